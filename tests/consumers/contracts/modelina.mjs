// Generate TypeScript models from an AsyncAPI document with Modelina, as a frontend team would;
// print the model names and every warning or error Modelina logged, as JSON.
// Usage: node modelina.mjs FILE
import { readFileSync } from "node:fs";
import { Logger, TypeScriptGenerator } from "@asyncapi/modelina";

const logged = [];
const keep = (level) => (message) => logged.push({ level, message: String(message) });
Logger.setLogger({ debug() {}, info() {}, warn: keep("warn"), error: keep("error") });

const generator = new TypeScriptGenerator({ modelType: "interface" });
const models = await generator.generate(readFileSync(process.argv[2], "utf8"));
console.log(JSON.stringify({ models: models.map((m) => m.modelName), logged }));
