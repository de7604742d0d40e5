// Validates Kubernetes objects against the API schemas of the npm package
// kubernetes-models (the OpenAPI schemas of Kubernetes 1.x, compiled).
//   node deploy/validate/validate.js rendered.yaml.json
// Input: a JSON array of objects (test_deploy.py converts the rendered
// YAML). Prints one line per invalid object and exits 1; unknown kinds are
// errors too, so nothing passes unchecked.
"use strict";
const fs = require("fs");
const path = require("path");

const models = path.join(__dirname, "node_modules", "kubernetes-models");

function modelFor(apiVersion, kind) {
  // core/v1 objects live under kubernetes-models/v1, others under GROUP/VERSION.
  const file = path.join(models, apiVersion, `${kind}.js`);
  if (!fs.existsSync(file)) return null;
  return require(file)[kind];
}

const objects = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let bad = 0;
for (const obj of objects) {
  const where = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
  const Model = modelFor(obj.apiVersion || "", obj.kind || "");
  if (!Model) {
    console.log(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    bad++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`${where}: valid ${obj.apiVersion} ${obj.kind}`);
  } catch (e) {
    console.log(`${where}: ${e.message.split("\n").join("; ")}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
