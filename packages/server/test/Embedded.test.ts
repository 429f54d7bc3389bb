import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import type { RunningProgram } from "./support/programs.js"
import { freePort, originalFiveCalls, startProgram } from "./support/programs.js"

describe("pnpm start (the embedded program, as a separate process)", () => {
  let program: RunningProgram
  let baseUrl: string

  beforeAll(async () => {
    const port = await freePort()
    baseUrl = `http://127.0.0.1:${port}`
    program = startProgram("server/src/bin/embedded.ts", { PORT: String(port), PROCESSING_DELAY: "50 millis" })
    const deadline = Date.now() + 30_000
    while (!program.output().includes("Listening on")) {
      if (Date.now() > deadline || program.process.exitCode !== null) {
        throw new Error(`the embedded program did not start:\n${program.output()}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }, 40_000)

  afterAll(async () => {
    await program?.stop()
  })

  it("serves the original five calls: new → processing → processed", async () => {
    const { create, list, process, processed } = await originalFiveCalls(baseUrl, "someid")
    expect(create.status).toBe(201)
    expect(await create.json()).toEqual({ id: "someid", name: "somename", status: "new", version: 1 })
    expect(process.status).toBe(202)
    expect(await process.json()).toMatchObject({ id: "someid", status: "processing" })
    expect(list.status).toBe(200)
    // The list reads the read model, which may lag: any of the order's states, but one that really was.
    const listed = await list.json() as Array<{ status: string; version: number }>
    expect(listed).toHaveLength(1)
    expect([
      { id: "someid", name: "somename", status: "new", version: 1 },
      { id: "someid", name: "somename", status: "processing", version: 2 },
      { id: "someid", name: "somename", status: "processed", version: 3 }
    ]).toContainEqual(listed[0])
    expect(processed).toEqual({ id: "someid", name: "somename", status: "processed", version: 3 })
  }, 40_000)

  it("exits cleanly on SIGTERM", async () => {
    expect(await program.stop()).toBe(0)
  }, 20_000)
})
