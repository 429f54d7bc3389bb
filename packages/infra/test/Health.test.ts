import { HttpApp, HttpServerResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import * as EventBus from "@orders/domain/EventBus"
import { fastDeliveryPolicy } from "@orders/domain/testing/contract/EventBusContract"
import { lifecycle, uniqueOrderId, waitFor } from "@orders/domain/testing/fixtures"
import { Deferred, Effect, Fiber, Layer, TestClock } from "effect"
import type { HealthShape } from "../src/Health.js"
import { checkTimeout, Health, makeHealth, requireMembership } from "../src/Health.js"
import { withOpsEndpoints } from "../src/OpsEndpoints.js"
import { launch } from "../src/Program.js"

/** The operators' endpoints of a program whose health is `health`, as a fetch-like function. */
const endpointsOf = (health: HealthShape) => {
  const app = withOpsEndpoints(Effect.succeed(HttpServerResponse.empty({ status: 404 }))).pipe(
    Effect.provideService(Health, health)
  )
  const handler = HttpApp.toWebHandler(app)
  return (path: string) =>
    Effect.promise(async () => {
      const response = await handler(new Request(`http://localhost${path}`))
      return { status: response.status, body: await response.json() as unknown }
    })
}

describe("Health", () => {
  it.effect("is ready only when every check answers, and says which does not", () =>
    Effect.gen(function*() {
      const health = makeHealth()
      yield* health.register("store", Effect.void)
      expect(yield* health.readiness).toEqual({ ready: true, checks: { store: "ok" } })
      yield* health.register("bus", Effect.fail("unreachable"))
      yield* health.register("broken", Effect.dieMessage("a bug"))
      yield* health.register("hung", Effect.never)
      const readiness = yield* Effect.fork(health.readiness)
      yield* TestClock.adjust(checkTimeout)
      expect(yield* Fiber.join(readiness)).toEqual({
        ready: false,
        checks: { store: "ok", bus: "unreachable", broken: "a bug", hung: "no answer within 2s" }
      })
    }).pipe(Effect.scoped))

  it.effect("drops a check with the Scope that registered it", () =>
    Effect.gen(function*() {
      const health = makeHealth()
      yield* Effect.scoped(health.register("gone", Effect.fail("down")))
      expect(yield* health.readiness).toEqual({ ready: true, checks: {} })
    }))

  it.live("turns readiness off when a consumer stops", () =>
    Effect.gen(function*() {
      const health = makeHealth()
      const endpoints = endpointsOf(health)
      const bus = yield* EventBus.makeMemory(fastDeliveryPolicy)
      // A handler that interrupts itself leaves its order stuck: the consumer stops for good.
      const subscription = yield* bus.subscribe("g", () => Effect.interrupt)
      yield* requireMembership("g", subscription).pipe(Effect.provideService(Health, health))
      expect(yield* endpoints("/health/ready")).toEqual({
        status: 200,
        body: { status: "ready", checks: { "consumer g": "ok" } }
      })

      yield* bus.publish(lifecycle(uniqueOrderId("stuck"), 1))
      const ready = yield* waitFor(endpoints("/health/ready"), (answer) => answer.status !== 200)
      expect(ready).toEqual({
        status: 503,
        body: { status: "not ready", checks: { "consumer g": "not a member of its consumer group" } }
      })
      // Still alive: the supervisor ends the program, not the probe.
      expect(yield* endpoints("/health/live")).toEqual({ status: 200, body: { status: "live" } })
    }).pipe(Effect.scoped))

  it.live("is not ready until the program is built", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<HealthShape>()
      const proceed = yield* Deferred.make<void>()
      const program = Layer.mergeAll(
        Layer.effectDiscard(Effect.flatMap(Health, (health) => Deferred.succeed(seen, health))),
        Layer.effectDiscard(Deferred.await(proceed))
      )
      const running = yield* Effect.fork(launch(program))
      const health = yield* Deferred.await(seen)
      expect(yield* health.readiness).toEqual({ ready: false, checks: { started: "starting" } })
      yield* Deferred.succeed(proceed, undefined)
      expect(yield* waitFor(health.readiness, (readiness) => readiness.ready)).toEqual({
        ready: true,
        checks: { started: "ok" }
      })
      // Each program has health checks of its own, not the process-wide ones.
      expect(health).not.toBe(yield* Health)
      yield* Fiber.interrupt(running)
    }))

  it.effect("answers the operators' endpoints only for GET and HEAD, and passes everything else on", () =>
    Effect.gen(function*() {
      const health = makeHealth()
      const handler = HttpApp.toWebHandler(
        withOpsEndpoints(Effect.succeed(HttpServerResponse.text("the app"))).pipe(Effect.provideService(Health, health))
      )
      const text = (request: Request) => Effect.promise(() => handler(request).then((response) => response.text()))
      expect(yield* text(new Request("http://localhost/health/live", { method: "POST" }))).toBe("the app")
      expect(yield* text(new Request("http://localhost/health"))).toBe("the app")
      expect(yield* text(new Request("http://localhost/health/live?verbose"))).toBe("{\"status\":\"live\"}")
      const metrics = yield* Effect.promise(() => handler(new Request("http://localhost/metrics")))
      expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
    }))
})
