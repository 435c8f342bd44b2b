"""What page furniture says in the languages of the world's press, beside the English.

`text_lines` and `text_prune` recognise some furniture by its words ("Related:",
"Comments", "Most read"). Those phrases are generic in each language, never a site's;
these are their equivalents in the languages newsmon tests pages in (French, German,
Spanish, Italian, Portuguese, Russian, Arabic, Chinese, Japanese). Each is a regex
fragment, matched case-insensitively at the start of a short line, as the English ones are.
"""

from __future__ import annotations

# A label that introduces a link to another story ("À lire aussi : ...").
TEASERS = (
    r"(?:à )?lire aussi|(?:à )?voir aussi|sur le même sujet|lire la suite"
    r"|lesen sie (?:auch|mehr)|auch interessant|mehr zum thema|siehe auch"
    r"|le[ae] también|ver también|te puede interesar|noticias relacionadas"
    r"|leggi anche|potrebbe interessarti|leia (?:também|mais)|veja também"
    r"|читайте также|смотрите также|по теме|читать далее"
    r"|إ?اقرأ أيضا[ًً]?|اقرأ المزيد|مواضيع ذات صلة"
    r"|相关阅读|相关新闻|延伸阅读|推荐阅读|相关文章|更多阅读"
    r"|関連記事|関連ニュース|あわせて読みたい|続きを読む"
)
# A whole line that is a section label of furniture ("Commentaires", "Самое читаемое").
LABELS = (
    r"commentaires?|laisser un commentaire|partager|les plus lus"
    r"|kommentare?|teilen|meistgelesen"
    r"|comentarios?|deja un comentario|compartir|lo más leído"
    r"|commenti|condividi|comentários|compartilhar|mais lidas"
    r"|комментари[йи]|поделиться|самое читаемое"
    r"|التعليقات|شارك|الأكثر قراءة"
    r"|发表评论|评论|分享|热门文章|热门"
    r"|コメント(?:する)?|シェア|アクセスランキング"
)
# A call to the reader (the comment form's prompts).
PITCHES = (
    r"veuillez saisir|bitte geben sie|por favor,? introduce|пожалуйста, введите"
    r"|الرجاء إدخال|请输入|を入力してください"
)
# A heading over a block of links to other stories.
SECTION_LABELS = (
    r"les plus lus|à lire aussi|sur le même sujet|meistgelesen|mehr zum thema"
    r"|lo más leído|noticias relacionadas|самое читаемое|читайте также|по теме"
    r"|الأكثر قراءة|اقرأ أيضا|热门文章|相关阅读|延伸阅读|アクセスランキング|関連記事"
)
