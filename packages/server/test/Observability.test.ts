/**
 * What the server tells operators: `/metrics` (the HTTP series by route and
 * status, the commands, the projection lag), the health endpoints, and the
 * relay's spans and series.
 */
import { HttpClientRequest } from "@effect/platform"
import { describe, expect, it, layer } from "@effect/vitest"
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { EventMetadata, OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { lifecycle, waitFor } from "@orders/domain/testing/fixtures"
import { withTraceIds } from "@orders/infra/Telemetry"
import type { Tracer } from "effect"
import { Duration, Effect, Fiber, HashMap, Layer, Logger, Metric, Option, Ref } from "effect"
import { backlogLoop, makeRelay, outboxEntries, outboxOldestAge, relayedEvents } from "../src/OutboxRelay.js"
import { apiSystem, create, get, post, raw, send } from "./support/apiSystem.js"

/** The value of the series `series` (its name and labels, as written) in a Prometheus text, 0 when absent. */
const sample = (text: string, series: string) => {
  const line = text.split("\n").find((line) => line.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

const scrape = Effect.map(get("/metrics"), (answer) => String(answer.body))

layer(apiSystem(), { excludeTestServices: true })("the server's operators' endpoints", (it) => {
  it.effect("serve the HTTP series by method, route and status, and the commands by type and outcome", () =>
    Effect.gen(function*() {
      const series = [
        "orders_http_requests_total{method=\"POST\",route=\"/\",status=\"201\"}",
        "orders_http_requests_total{method=\"POST\",route=\"/\",status=\"409\"}",
        "orders_http_requests_total{method=\"GET\",route=\"/:id\",status=\"404\"}",
        "orders_http_requests_total{method=\"GET\",route=\"unknown\",status=\"404\"}",
        "orders_http_request_duration_seconds_count{method=\"POST\",route=\"/\"}",
        "orders_commands_total{command=\"CreateOrder\",outcome=\"accepted\"}",
        "orders_commands_total{command=\"CreateOrder\",outcome=\"OrderAlreadyExists\"}",
        "orders_events_appended_total{type=\"OrderCreated\"}"
      ]
      const before = yield* scrape
      yield* create({ id: "metered", name: "book" })
      yield* create({ id: "metered", name: "book" })
      yield* get("/nobody")
      yield* get("/no/such/route")
      const answer = yield* get("/metrics")
      expect(answer.status).toBe(200)
      expect(answer.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8")
      const after = String(answer.body)
      expect(series.map((name) => sample(after, name) - sample(before, name))).toEqual([1, 1, 1, 1, 2, 1, 1, 1])
      expect(after).toContain("# TYPE orders_http_request_duration_seconds histogram")
      // A scrape is not an API request: it counts nowhere.
      expect(sample(after, "orders_http_requests_total{method=\"GET\",route=\"/:id\",status=\"200\"}")).toBe(
        sample(before, "orders_http_requests_total{method=\"GET\",route=\"/:id\",status=\"200\"}")
      )
    }))

  it.effect("count a request whose client went away as 499, not as a server failure", () =>
    Effect.gen(function*() {
      const gone = "orders_http_requests_total{method=\"POST\",route=\"/\",status=\"499\"}"
      const failed = "orders_http_requests_total{method=\"POST\",route=\"/\",status=\"500\"}"
      const before = yield* scrape
      // A body that never ends, and a client that stops waiting for the answer.
      const hungUp = yield* Effect.flip(
        raw(
          "POST / HTTP/1.1\nHost: test\nContent-Type: application/json\nContent-Length: 100\n",
          "{\"id\":",
          Duration.millis(200)
        )
      )
      expect(hungUp.message).toContain("no answer")
      const after = yield* waitFor(scrape, (text) => sample(text, gone) > sample(before, gone), Duration.seconds(3))
      expect(sample(after, failed)).toBe(sample(before, failed))
    }))

  it.effect("serve the projection lag once the projector wrote an order", () =>
    Effect.gen(function*() {
      const written = (text: string) => sample(text, "orders_projection_lag_seconds_count")
      const before = written(yield* scrape)
      yield* create({ id: "projected", name: "book" })
      const after = yield* waitFor(scrape, (text) => written(text) > before, Duration.seconds(10))
      expect(written(after)).toBe(before + 1)
    }))

  it.effect("answer liveness, and readiness with each check it made", () =>
    Effect.gen(function*() {
      expect(yield* get("/health/live")).toMatchObject({ status: 200, body: { status: "live" } })
      expect(yield* get("/health/ready")).toMatchObject({
        status: 200,
        body: {
          status: "ready",
          checks: {
            eventStore: "ok",
            readModel: "ok",
            "consumer orders.projector": "ok",
            "consumer orders.processor": "ok"
          }
        }
      })
    }))

  it.effect("give a request a correlation id when the caller sends none, and keep the caller's", () =>
    Effect.gen(function*() {
      yield* create({ id: "correlated", name: "book" })
      yield* post("/", JSON.stringify({ id: "given", name: "book" }), "application/json", {
        "x-correlation-id": "caller-42"
      })
      const events = (id: string) => Effect.flatMap(EventStore.EventStore, (store) => store.read(OrderId.make(id)))
      const [generated] = yield* events("correlated")
      const [given] = yield* events("given")
      expect(generated!.metadata.correlationId).toMatch(/^[0-9a-f-]{36}$/)
      expect(given!.metadata.correlationId).toBe("caller-42")
    }))

  it.effect("leave the API as it was: a method the endpoints do not answer goes to it", () =>
    Effect.gen(function*() {
      const answer = yield* send(HttpClientRequest.post("/health/ready"))
      expect(answer.status).toBe(404)
    }))
})

/** The annotations of every log record the system writes, trace ids included. */
const records: Array<Record<string, unknown>> = []
const CapturedLogs = Logger.replace(
  Logger.defaultLogger,
  withTraceIds(
    Logger.make(({ annotations, message }) =>
      void records.push({ message, ...Object.fromEntries(HashMap.toEntries(annotations)) })
    )
  )
)

layer(apiSystem({ HTTP_ACCESS_LOG: "true" }).pipe(Layer.provide(CapturedLogs)), { excludeTestServices: true })(
  "the server's logs",
  (it) => {
    it.effect("carry the request's trace and correlation ids", () =>
      Effect.gen(function*() {
        records.length = 0
        yield* post("/", JSON.stringify({ id: "logged", name: "book" }), "application/json", {
          "x-correlation-id": "caller-7"
        })
        const [access] = records.filter((record) => String(record.message).includes("Sent HTTP response"))
        expect(access).toMatchObject({
          "http.method": "POST",
          "http.url": "/",
          "http.status": 201,
          "http.duration_ms": expect.any(Number),
          correlationId: "caller-7",
          traceId: expect.stringMatching(/^[0-9a-f]{32}$/),
          spanId: expect.stringMatching(/^[0-9a-f]{16}$/)
        })
      }))

    it.effect("carry the correlation id the server made up on the request's events too", () =>
      Effect.gen(function*() {
        records.length = 0
        yield* create({ id: "made-up", name: "book" })
        const [access] = records.filter((record) => String(record.message).includes("Sent HTTP response"))
        const [created] = yield* Effect.flatMap(EventStore.EventStore, (store) => store.read(OrderId.make("made-up")))
        expect(access?.correlationId).toMatch(/^[0-9a-f-]{36}$/)
        expect(created?.metadata.correlationId).toBe(access?.correlationId)
      }))
  }
)

describe("the outbox relay's telemetry", () => {
  const withTrace = (event: OrderEventEnvelope, traceparent: string) =>
    OrderEventEnvelope.make({ ...event, metadata: EventMetadata.make({ ...event.metadata, traceparent }) })

  it.effect("publishes each stream in the trace of its command, and counts what it published", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.makeMemory({ grace: Duration.zero })
      const spans = yield* Ref.make<ReadonlyArray<Tracer.AnySpan>>([])
      const bus = yield* EventBus.makeMemory()
      const watched = {
        ...bus,
        publish: (events: ReadonlyArray<OrderEventEnvelope>) =>
          Effect.zipRight(
            Effect.flatMap(Effect.currentParentSpan, (span) => Ref.update(spans, (all) => [...all, span])),
            bus.publish(events)
          ).pipe(Effect.orDie)
      }
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
      const [created, requested] = lifecycle(OrderId.make("relayed"), 2).map((event) => withTrace(event, traceparent))
      yield* store.append(OrderId.make("relayed"), 0, [created!, requested!])
      const before = (yield* Metric.value(relayedEvents)).count
      const relayOnce = yield* makeRelay({ batchSize: 10 }).pipe(
        Effect.provideService(EventStore.EventStore, store),
        Effect.provideService(EventBus.EventBus, watched)
      )
      expect(yield* relayOnce()).toBe(2)
      expect((yield* Metric.value(relayedEvents)).count - before).toBe(2)
      const [publish] = yield* Ref.get(spans)
      expect(publish).toMatchObject({ name: "OutboxRelay.publish", traceId: "4bf92f3577b34da6a3ce929d0e0e4736" })
      expect(Option.map((publish as Tracer.Span).parent, (parent) => parent.spanId)).toEqual(
        Option.some("00f067aa0ba902b7")
      )
    }))

  it.live("keeps the outbox gauges up to date from a store that tells its backlog", () =>
    Effect.gen(function*() {
      const loop = yield* Effect.fork(
        backlogLoop({ backlog: () => Effect.succeed({ entries: 3, oldest: Option.some(Duration.seconds(42)) }) })
      )
      expect((yield* waitFor(Metric.value(outboxEntries), (gauge) => gauge.value === 3)).value).toBe(3)
      expect((yield* Metric.value(outboxOldestAge)).value).toBe(42)
      yield* Fiber.interrupt(loop)
    }))
})
