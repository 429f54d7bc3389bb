import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { traced } from "../src/Tracing.js"

const spanName = Effect.currentSpan.pipe(Effect.option, Effect.map(Option.map((span) => span.name)))

describe("traced", () => {
  it.effect("opens the span while tracing is on", () =>
    Effect.gen(function*() {
      expect(yield* spanName.pipe(traced("Example.work"))).toEqual(Option.some("Example.work"))
    }))

  it.effect("opens none while tracing is off, not even a no-op one", () =>
    Effect.gen(function*() {
      expect(yield* spanName.pipe(traced("Example.work"))).toEqual(Option.none())
    }).pipe(Effect.provide(Layer.setTracerEnabled(false))))
})
