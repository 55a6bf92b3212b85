// A service's typed publisher, as written against openapi-typescript's output (openapi.d.ts,
// generated beside it by the test, with default options). bodies.ts, also generated, holds the
// docs' and the OpenAPI document's example bodies typed as PublishBody: tsc --strict must
// accept each, minimal as they are (no source, no optional field).
import type { components, paths } from "./openapi";

type Publish = paths["/api/v1/events"]["post"];
export type PublishBody = Publish["requestBody"]["content"]["application/json"];
export type Receipt = Publish["responses"][202]["content"]["application/json"];
export type BatchBody = paths["/api/v1/events/batch"]["post"]["requestBody"]["content"]["application/json"];
export type NotJson = Publish["responses"][400]["content"]["application/json"];

export async function publish(base: string, token: string, event: PublishBody): Promise<Receipt> {
  const response = await fetch(`${base}/api/v1/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(event),
  });
  if (response.status === 400) {
    const answer = (await response.json()) as NotJson;
    throw new Error(answer.message);
  }
  if (response.status !== 202) throw new Error(`publish: ${response.status}`);
  return (await response.json()) as Receipt;
}

// What a publisher writes is the ...Input schema: three fields make a workflow.progress.
export const progress: components["schemas"]["WorkflowProgressInput"] = {
  workflow_id: "880e8400-e29b-41d4-a716-446655440003",
  status: "running",
  progress: 40,
};
export const batch: BatchBody = [{ type: "workflow.progress", data: progress }];

// The required ones stay required: without progress it is not a workflow.progress to publish.
// @ts-expect-error progress is missing
export const incomplete: components["schemas"]["WorkflowProgressInput"] = { workflow_id: "x", status: "running" };
