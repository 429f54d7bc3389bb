import { describe, expect, layer } from "@effect/vitest"
import type { LogLevel } from "effect"
import { Cause, Effect, Layer, Logger } from "effect"
import { apiSystem, create, get, post } from "./support/apiSystem.js"
import { FaultyAdaptersLive } from "./support/faultyAdapters.js"

/** Every log record the system writes, with its level. */
const records: Array<{ readonly level: LogLevel.LogLevel; readonly message: unknown; readonly cause: string }> = []
const CapturedLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ cause, logLevel, message }) =>
    void records.push({ level: logLevel, message, cause: Cause.pretty(cause) })
  )
)

describe("Http", () => {
  layer(apiSystem({}, FaultyAdaptersLive).pipe(Layer.provide(CapturedLogs)), { excludeTestServices: true })(
    "failures",
    (it) => {
      it.effect("answers a defect with a 500 problem and logs it at error level; client errors log nothing", () =>
        Effect.gen(function*() {
          records.length = 0
          yield* create({ id: "a b", name: "x" })
          yield* post("/", "x", "multipart/form-data")
          yield* get("/nobody")
          expect(records).toEqual([])

          const answer = yield* get("/bug-1")
          expect(answer).toMatchObject({
            status: 500,
            headers: { "content-type": "application/problem+json" },
            body: { _tag: "InternalServerError", status: 500, type: "urn:orders:problem:InternalServerError" }
          })
          expect(records.map((record) => [record.level.label, record.message])).toEqual([
            ["ERROR", ["request failed unexpectedly"]]
          ])
          expect(records[0]!.cause).toContain("a deliberate defect")
        }))
    }
  )
})
