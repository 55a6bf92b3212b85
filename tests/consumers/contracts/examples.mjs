// Check every example in the AsyncAPI and OpenAPI documents against the schema it illustrates,
// with ajv (JSON Schema 2020-12, formats checked), as a team validating its fixtures would.
// Prints {checked, failures, logged} as JSON; anything ajv logs (an unknown keyword or format) is
// reported too. Usage: node examples.mjs ASYNCAPI.json OPENAPI.json
import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const logged = [];
const keep = (level) => (...args) => logged.push({ level, message: args.join(" ") });
const ajv = new Ajv2020({ allErrors: true, logger: { log() {}, warn: keep("warn"), error: keep("error") } });
addFormats(ajv);
// Where the documents keep their schemas, and OpenAPI's annotation for tagged unions.
ajv.addVocabulary(["components", "discriminator"]);

const checked = [];
const failures = [];

function check(base, where, pointer, example) {
  const valid = ajv.validate({ $ref: `${base}#${pointer}` }, example);
  checked.push(where);
  if (!valid) failures.push({ where, errors: ajv.errors });
}

function load(base, file) {
  const document = JSON.parse(readFileSync(file, "utf8"));
  ajv.addSchema({ $id: base, components: { schemas: document.components.schemas } });
  return document;
}

const asyncapi = load("https://swe-realtime.invalid/asyncapi.json", process.argv[2]);
for (const [key, message] of Object.entries(asyncapi.components.messages)) {
  for (const [index, example] of (message.examples ?? []).entries()) {
    check("https://swe-realtime.invalid/asyncapi.json", `asyncapi message ${key} example ${index}`, message.payload.$ref.slice(1), example.payload);
  }
}
const openapi = load("https://swe-realtime.invalid/openapi.json", process.argv[3]);
for (const [label, document] of Object.entries({ asyncapi, openapi })) {
  for (const [name, schema] of Object.entries(document.components.schemas)) {
    for (const [index, example] of (schema.examples ?? []).entries()) {
      const base = `https://swe-realtime.invalid/${label}.json`;
      check(base, `${label} schema ${name} example ${index}`, `/components/schemas/${name}`, example);
    }
  }
}
// The operations keep no examples of their own (they are on the schemas): say so if one appears.
for (const [path, item] of Object.entries(openapi.paths)) {
  for (const [method, operation] of Object.entries(item)) {
    const bodies = [operation.requestBody, ...Object.values(operation.responses ?? {})];
    for (const media of bodies.flatMap((body) => Object.values(body?.content ?? {}))) {
      if ("example" in media || "examples" in media) failures.push({ where: `${method} ${path}`, errors: "unchecked example" });
    }
  }
}
console.log(JSON.stringify({ checked, failures, logged }));
