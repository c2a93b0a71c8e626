// Offline validator for Kubernetes manifests: the tests run it on what
// `mlctl render k8s` writes.
//
//   node tests/k8s/validate.mjs FILE...
//
// Each FILE is a YAML stream of objects. Every document must
//   - parse as YAML 1.2 with no error or warning, and no duplicate key;
//   - read the same as YAML 1.1 (what Go's yaml.v2 behind kubectl does), so
//     an unquoted "on" or "0755" cannot mean one thing here and another in
//     a cluster;
//   - be an object with apiVersion, kind and metadata.name;
//   - pass the JSON schema of its kind from the OpenAPI of Kubernetes (the
//     npm package kubernetes-models) or of Argo Rollouts
//     (@kubernetes-models/argo-rollouts). A kind neither knows is an error.
//
// Prints one line per problem on stderr ("FILE: document N (Kind 'name'):
// what") and "FILE: N objects valid" on stdout. Exit status: 0 when every
// object of every file is valid, 1 when one is not, 2 for a usage error or
// a file that cannot be read. Needs no network and no cluster.

import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

// apiVersion -> the module folder of its models
function modulePath(apiVersion, kind) {
	if (!/^[A-Za-z]+$/.test(kind)) return null;
	const m = /^(?:([a-z0-9.-]+)\/)?(v[0-9]+(?:(?:alpha|beta)[0-9]+)?)$/.exec(apiVersion);
	if (!m) return null;
	const [, group, version] = m;
	if (group === "argoproj.io")
		return `@kubernetes-models/argo-rollouts/argoproj.io/${version}/${kind}`;
	return group ? `kubernetes-models/${group}/${version}/${kind}`
		     : `kubernetes-models/${version}/${kind}`;
}

async function model(apiVersion, kind) {
	const path = modulePath(apiVersion, kind);
	if (!path) return null;
	try {
		const mod = await import(path);
		return mod[kind] ?? null;
	} catch {
		return null;
	}
}

function parse(text, version) {
	return parseAllDocuments(text, {
		version,
		uniqueKeys: true,
		strict: true,
		prettyErrors: false,
	});
}

function isObject(v) {
	return v !== null && typeof v === "object" && !Array.isArray(v);
}

async function validateFile(file) {
	let text;
	try {
		text = readFileSync(file, "utf8");
	} catch (e) {
		console.error(`${file}: cannot read: ${e.message}`);
		return 2;
	}
	const problems = [];
	const docs12 = parse(text, "1.2");
	const docs11 = parse(text, "1.1");
	const list = Array.isArray(docs12) ? docs12 : [docs12];
	const list11 = Array.isArray(docs11) ? docs11 : [docs11];
	let valid = 0;

	for (let i = 0; i < list.length; i++) {
		const doc = list[i];
		const where = `${file}: document ${i + 1}`;
		if (doc.errors.length || doc.warnings.length) {
			for (const e of [...doc.errors, ...doc.warnings])
				problems.push(`${where}: YAML: ${e.message}`);
			continue;
		}
		const obj = doc.toJS({ maxAliasCount: 0 });
		if (obj === null || obj === undefined) {
			// a stream may open with comments only
			if (doc.contents === null) continue;
		}
		const obj11 = list11[i] && !list11[i].errors.length
			? list11[i].toJS({ maxAliasCount: 0 }) : undefined;
		if (JSON.stringify(obj) !== JSON.stringify(obj11))
			problems.push(`${where}: reads differently as YAML 1.1 (a value is not quoted where it must be)`);
		if (!isObject(obj)) {
			problems.push(`${where}: not a mapping`);
			continue;
		}
		const kind = typeof obj.kind === "string" ? obj.kind : "";
		const name = isObject(obj.metadata) && typeof obj.metadata.name === "string"
			? obj.metadata.name : "";
		const what = `${where} (${kind || "?"} '${name}')`;
		if (typeof obj.apiVersion !== "string" || !kind || !name) {
			problems.push(`${what}: apiVersion, kind and metadata.name are required`);
			continue;
		}
		const Model = await model(obj.apiVersion, kind);
		if (!Model) {
			problems.push(`${what}: no schema for ${obj.apiVersion} ${kind}`);
			continue;
		}
		try {
			new Model(obj).validate();
			valid++;
		} catch (e) {
			problems.push(`${what}: ${e.message}`);
		}
	}
	if (valid === 0 && problems.length === 0)
		problems.push(`${file}: no object in the file`);
	for (const p of problems) console.error(p);
	if (problems.length) return 1;
	console.log(`${file}: ${valid} objects valid`);
	return 0;
}

const files = process.argv.slice(2);
if (!files.length) {
	console.error("usage: node tests/k8s/validate.mjs FILE...");
	process.exit(2);
}
let status = 0;
for (const f of files) status = Math.max(status, await validateFile(f));
process.exit(status);
