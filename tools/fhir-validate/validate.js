#!/usr/bin/env node
// Validates FHIR R4 resources with validators no one on this team wrote:
//   1. FHIR.js (lantanagroup/FHIR.js): the base R4 structure of every resource (required
//      elements, types, codes of required bindings, no unexpected properties);
//   2. fhirpath.js (HL7/fhirpath.js, R4 model): the HL7 CGM IG's rules for each profile a
//      resource claims in meta.profile (profile-rules.js, each citing its line of
//      profiles.fsh), and the IG's invariants with their own Expression from profiles.fsh.
// A claimed CGM profile without rules here is an error: nothing claims a profile unchecked.
//
// usage: node validate.js --profiles <profiles.fsh> [file.json ...]   (stdin without files)
// Input: a resource or an array of them; a Bundle is checked whole and entry by entry.
// Output: JSON {ok, resources: [{ref, profiles, errors, warnings, checks}]} on stdout.
// Exit: 0 all valid, 1 something invalid, 2 the tool could not run.

const fs = require("fs");
const { Fhir } = require("fhir");
const fhirpath = require("fhirpath");
const r4 = require("fhirpath/fhir-context/r4");
const RULES = require("./profile-rules.js");

const CGM_SD = "http://hl7.org/fhir/uv/cgm/StructureDefinition/";
const BLOCK = /^(Profile|RuleSet|Extension|Instance|CodeSystem|Invariant|Alias|ValueSet):/;

function fail(msg) {
  process.stderr.write(`validate.js: ${msg}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const at = args.indexOf("--profiles");
if (at < 0 || !args[at + 1]) fail("usage: validate.js --profiles <profiles.fsh> [file.json ...]");
const fshPath = args[at + 1];
const files = args.filter((_, i) => i !== at && i !== at + 1);
let fsh;
try {
  fsh = fs.readFileSync(fshPath, "utf8").split("\n");
} catch (e) {
  fail(`cannot read ${fshPath}: ${e.message}`);
}

// The lines of one block of profiles.fsh (its header line to the next header), 1-based.
function block(header) {
  const start = fsh.findIndex((l) => l.trimEnd() === header);
  if (start < 0) fail(`profiles.fsh has no block "${header}"`);
  let end = start + 1;
  while (end < fsh.length && !BLOCK.test(fsh[end])) end++;
  return { start, end };
}

function cite(rule) {
  const { start, end } = block(rule.block);
  for (let i = start + 1; i < end; i++) {
    if (fsh[i].trim() === rule.line.trim()) return i + 1;
  }
  fail(`profiles.fsh, block "${rule.block}", has no line "${rule.line}": profile-rules.js is out of date`);
}

function invariant(name) {
  const { start, end } = block(`Invariant: ${name}`);
  for (let i = start + 1; i < end; i++) {
    const m = fsh[i].match(/^Expression:\s*"(.*)"\s*$/);
    if (m) return { expr: m[1], line: i + 1 };
  }
  fail(`profiles.fsh: invariant ${name} has no Expression`);
}

// Every rule resolved once, so a stale citation stops the run before any resource.
const resolved = {};
for (const [profile, rules] of Object.entries(RULES)) {
  resolved[profile] = rules.map((r) => {
    const line = cite(r);
    if (r.invariant) {
      const inv = invariant(r.invariant);
      return { ...r, expr: inv.expr, cite: `profiles.fsh:${line} (${r.line}; Expression at line ${inv.line})` };
    }
    return { ...r, cite: `profiles.fsh:${line} (${r.line})` };
  });
}

const fhir = new Fhir();

// The resources a summary's hasMember references, found in the same Bundle by fullUrl or
// by type and id.
function membersOf(resource, bundle) {
  if (!bundle || !Array.isArray(resource.hasMember)) return [];
  const found = [];
  for (const ref of resource.hasMember) {
    const r = ref.reference || "";
    const hit = (bundle.entry || []).find(
      (e) => e.resource && (e.fullUrl === r || `${e.resource.resourceType}/${e.resource.id}` === r || (e.fullUrl || "").endsWith(`/${r}`)),
    );
    if (hit) found.push(hit.resource);
  }
  return found;
}

function checkProfiles(resource, out, bundle) {
  const claimed = (resource.meta && resource.meta.profile) || [];
  for (const url of claimed) {
    if (!url.startsWith(CGM_SD)) continue;
    const id = url.slice(CGM_SD.length);
    out.profiles.push(id);
    const rules = resolved[id];
    if (!rules) {
      out.errors.push(`claims ${id}, for which this validator has no rules`);
      continue;
    }
    for (const r of rules) {
      let result;
      try {
        result = fhirpath.evaluate(resource, r.expr, { members: membersOf(resource, bundle) }, r4);
      } catch (e) {
        out.errors.push(`${r.cite}: could not evaluate ${r.expr}: ${e.message}`);
        continue;
      }
      const cite = r.what ? `${r.cite}: ${r.what}` : r.cite;
      out.checks.push(cite);
      if (!(result.length === 1 && result[0] === true)) out.errors.push(`${id}: ${cite} fails`);
    }
  }
}

function validate(resource, results) {
  const ref = `${resource.resourceType || "?"}/${resource.id || "(no id)"}`;
  const out = { ref, profiles: [], errors: [], warnings: [], checks: [] };
  let structure;
  try {
    structure = fhir.validate(resource, { errorOnUnexpected: true });
  } catch (e) {
    out.errors.push(`FHIR.js could not validate: ${e.message}`);
    structure = { messages: [] };
  }
  for (const m of structure.messages || []) {
    const text = `${m.location}: ${m.message}`;
    if (m.severity === "error") out.errors.push(`R4 structure (${m.resourceId}) ${text}`);
    else out.warnings.push(text);
  }
  checkProfiles(resource, out);
  results.push(out);
  if (resource.resourceType === "Bundle") {
    for (const e of resource.entry || []) {
      if (e.resource) {
        const inner = { ref: `${ref} > ${e.resource.resourceType}/${e.resource.id || "(no id)"}`, profiles: [], errors: [], warnings: [], checks: [] };
        checkProfiles(e.resource, inner, resource);
        results.push(inner);
      }
    }
  }
}

let text = "";
try {
  text = files.length ? files.map((f) => fs.readFileSync(f, "utf8")) : [fs.readFileSync(0, "utf8")];
} catch (e) {
  fail(`cannot read the input: ${e.message}`);
}
const results = [];
for (const t of text) {
  let value;
  try {
    value = JSON.parse(t);
  } catch (e) {
    fail(`the input is not JSON: ${e.message}`);
  }
  for (const r of Array.isArray(value) ? value : [value]) validate(r, results);
}
const ok = results.every((r) => r.errors.length === 0);
// exitCode, not exit(): a pipe on Linux is written asynchronously, and exit() would cut a
// large report short.
process.stdout.write(JSON.stringify({ ok, resources: results }, null, 1) + "\n");
process.exitCode = ok ? 0 : 1;
