// Validates custom resources against their CRD schemas, as compiled by the
// @kubernetes-models packages that scripts/install-chart-tools.sh installs.
// usage: node crd_validate.js NODE_MODULES_PARENT < documents.json
// stdin: a JSON list of resources; stdout: a JSON list, one entry per resource:
// null when valid, else the validator's message.
"use strict";
const path = require("path");
const fs = require("fs");

const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

function modelOf(resource, prefix) {
  const [group, version] = resource.apiVersion.split("/");
  const pkg = PACKAGES[group];
  if (!pkg) throw new Error(`no schema package for ${resource.apiVersion}`);
  const file = path.join(prefix, "node_modules", pkg, group, version, resource.kind);
  return require(file)[resource.kind];
}

const prefix = process.argv[2];
const resources = JSON.parse(fs.readFileSync(0, "utf8"));
const results = resources.map((resource) => {
  try {
    const Model = modelOf(resource, prefix);
    new Model(resource).validate();
    return null;
  } catch (error) {
    return String(error.message || error);
  }
});
process.stdout.write(JSON.stringify(results));
