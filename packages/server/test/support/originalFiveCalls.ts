/**
 * The original service's five calls, as its README gives them with curl, and
 * the answers they must get.
 */
import { expect } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { Effect } from "effect"
import { orderOf } from "./programs.js"

/** A response's status and its body, parsed when it is JSON. */
const answer = (response: Response) =>
  Effect.promise(async () => {
    const text = await response.text()
    return { status: response.status, body: text === "" ? undefined : JSON.parse(text) as unknown }
  })

/** The original service's five calls, as its README gives them with curl, and what each answered. */
export const originalFiveCalls = (baseUrl: string, id: string) =>
  Effect.gen(function*() {
    const create = yield* Effect.promise(() =>
      fetch(`${baseUrl}/`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id, name: "somename", status: "new" })
      })
    ).pipe(Effect.flatMap(answer))
    const process = yield* Effect.promise(() =>
      fetch(`${baseUrl}/${id}`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: ""
      })
    ).pipe(Effect.flatMap(answer))
    const list = yield* Effect.promise(() => fetch(`${baseUrl}/`)).pipe(Effect.flatMap(answer))
    const processed = yield* waitFor(orderOf(baseUrl, id), (order) => order?.status === "processed")
    return { create, process, list, processed }
  })

/**
 * Checks the five calls' answers: created new, accepted as processing, listed in
 * one of the states the order really went through (the list reads the read
 * model, which may lag), and processed at last.
 */
export const expectOriginalFiveCalls = (
  id: string,
  calls: Effect.Effect.Success<ReturnType<typeof originalFiveCalls>>
) => {
  const at = (status: string, version: number) => ({ id, name: "somename", status, version })
  expect(calls.create).toEqual({ status: 201, body: at("new", 1) })
  expect(calls.process).toEqual({ status: 202, body: at("processing", 2) })
  expect(calls.list.status).toBe(200)
  // Right after the commands the read model may not show the order yet; if it does, in a state it really had.
  const listed = calls.list.body as Array<unknown>
  expect(listed.length).toBeLessThanOrEqual(1)
  for (const order of listed) expect([at("new", 1), at("processing", 2), at("processed", 3)]).toContainEqual(order)
  expect(calls.processed).toEqual(at("processed", 3))
}
