// Validate an AsyncAPI document with the official parser; print its diagnostics as JSON.
// Usage: node validate_asyncapi.mjs FILE
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], "utf8"));
const severities = ["error", "warning", "info", "hint"];
console.log(
  JSON.stringify({
    parsed: document !== undefined,
    diagnostics: diagnostics.map((d) => ({
      severity: severities[d.severity],
      code: d.code,
      message: d.message,
      path: d.path.join("/"),
    })),
  }),
);
