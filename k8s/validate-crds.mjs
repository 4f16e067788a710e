// Validate Istio and Prometheus Operator resources against their CRD schemas, offline.
// Usage: node validate-crds.mjs DOCS.json   (a JSON array of resources; run by check.py)
// The schemas come from the npm packages pinned in package-lock.json, generated from the
// projects' published CRDs. Prints one "INDEX<TAB>Kind/name: problem" line per error;
// exit 1 when there is any. Note: like the API server's structural schemas, these do not
// reject unknown fields (the API server would prune them).
import { readFileSync } from "node:fs";

const PACKAGES = {
  "networking.istio.io": "@kubernetes-models/istio",
  "security.istio.io": "@kubernetes-models/istio",
  "telemetry.istio.io": "@kubernetes-models/istio",
  "extensions.istio.io": "@kubernetes-models/istio",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const [i, doc] of docs.entries()) {
  const id = `${doc.kind}/${doc.metadata?.name}`;
  const report = (msg) => { failed++; console.log(`${i}\t${id}: ${msg}`); };
  const [group, version] = String(doc.apiVersion).split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version) { report(`no CRD schema for apiVersion ${doc.apiVersion}`); continue; }
  let Model;
  try {
    Model = (await import(`${pkg}/${group}/${version}/${doc.kind}`))[doc.kind];
  } catch {
    report(`no CRD schema for ${doc.apiVersion} ${doc.kind} in ${pkg}`);
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (err) {
    report(String(err.message).split("\n").join(" | "));
  }
}
process.exit(failed ? 1 : 0);
