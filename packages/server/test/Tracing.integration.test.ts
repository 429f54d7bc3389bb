/**
 * One trace from request to processed, across both programs: the server and
 * the processor run as OS processes on the real stack and export their spans
 * over OTLP/HTTP to a receiver started here. The processing request's trace
 * must hold the HTTP span, the command, its append and publish, the
 * projector's work, the processor's delivery and work, and the processor's own
 * command, append and publish, each program's spans under the other's. On
 * the way, both programs answer readiness and the processor its metrics on
 * its own listener.
 */
import { describe, expect, it } from "@effect/vitest"
import { waitFor } from "@orders/domain/testing/fixtures"
import { freePort } from "@orders/infra/testing/network"
import type { ReceivedSpan } from "@orders/infra/testing/otlpReceiver"
import { otlpReceiver } from "@orders/infra/testing/otlpReceiver"
import { freshStack } from "@orders/infra/testing/stack"
import { Duration, Effect } from "effect"
import { expectOriginalFiveCalls, originalFiveCalls } from "./support/originalFiveCalls.js"
import { startProgram, waitForOutput } from "./support/programs.js"

const SERVER_KIND = 2
const PRODUCER_KIND = 4
const CONSUMER_KIND = 5

/** A span of `service` named `name` whose attributes include `attributes`. */
const find = (
  spans: ReadonlyArray<ReceivedSpan>,
  service: string,
  name: string,
  attributes: Record<string, unknown> = {}
) =>
  spans.filter((span) =>
    span.service === service && span.name === name &&
    Object.entries(attributes).every(([key, value]) => String(span.attributes[key]) === String(value))
  )

describe("observing the server and the processor on the real stack", () => {
  it.scopedLive(
    "follows the original's five calls in one trace from the request to the processed order",
    () =>
      Effect.gen(function*() {
        const receiver = yield* otlpReceiver
        const stack = yield* freshStack
        const telemetry = {
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          // Batches go out every 100 ms rather than every 5 s.
          OTEL_BSP_SCHEDULE_DELAY: "100"
        }
        const env = { ...stack.env, ...telemetry, PROCESSING_DELAY: "100 millis" }
        const port = yield* Effect.promise(freePort)
        const baseUrl = `http://127.0.0.1:${port}`
        const server = yield* startProgram("server/src/bin/server.ts", { ...env, PORT: String(port) })
        // One after the other: FerretDB drops a connection that creates an index another one just created.
        yield* waitForOutput(server, "projector consuming")
        const metricsPort = yield* Effect.promise(freePort)
        const processor = yield* startProgram("processor/src/bin/processor.ts", {
          ...env,
          METRICS_PORT: String(metricsPort)
        })
        yield* waitForOutput(processor, "processor consuming")

        expectOriginalFiveCalls("traced", yield* originalFiveCalls(baseUrl, "traced"))

        // Both programs are ready, and say what they did.
        const ready = (url: string) =>
          Effect.promise(() => fetch(`${url}/health/ready`).then((answer) => answer.json()))
        const processorUrl = `http://127.0.0.1:${metricsPort}`
        expect(yield* ready(baseUrl)).toEqual({
          status: "ready",
          checks: { started: "ok", eventStore: "ok", readModel: "ok", "consumer orders.projector": "ok" }
        })
        expect(yield* ready(processorUrl)).toEqual({
          status: "ready",
          checks: { started: "ok", eventStore: "ok", "consumer orders.processor": "ok" }
        })
        const metrics = yield* Effect.promise(() => fetch(`${processorUrl}/metrics`).then((answer) => answer.text()))
        expect(metrics).toContain("orders_commands_total{command=\"CompleteProcessing\",outcome=\"accepted\"} 1")
        expect(metrics).toContain("orders_consumer_lag{group=\"orders.processor\"")

        // The processing request's trace, once the projector has written the processed order in it.
        const request = (spans: ReadonlyArray<ReceivedSpan>) =>
          find(spans, "orders-server", "POST /:id", { "url.path": "/traced" })[0]
        const processedRow = (spans: ReadonlyArray<ReceivedSpan>) =>
          find(spans, "orders-server", "Projector.save", { streamId: "traced", version: 3 })
            .filter((span) => span.traceId === request(spans)?.traceId)
        yield* waitFor(Effect.sync(receiver.spans), (spans) => processedRow(spans).length > 0, Duration.seconds(30))
        // A program sends the spans it still holds as it stops: then every span of the flow is here.
        expect(yield* processor.stop).toBe(0)
        expect(yield* server.stop).toBe(0)
        const spans = receiver.spans()
        const root = request(spans)
        expect(root, "the server exported the request's span").toBeDefined()
        expect(root!.kind).toBe(SERVER_KIND)
        const trace = spans.filter((span) => span.traceId === root!.traceId)
        const byId = new Map(trace.map((span) => [span.spanId, span]))
        const parentOf = (span: ReceivedSpan | undefined) =>
          span?.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId)
        const one = (service: string, name: string, attributes: Record<string, unknown> = {}) => {
          const found = find(trace, service, name, attributes)
          expect(found, `${service}: ${name} ${JSON.stringify(attributes)} in the trace`).not.toHaveLength(0)
          return found[0]!
        }

        // The server: the request's command, appended and published.
        const requested = one("orders-server", "CommandHandler.handle", { command: "RequestProcessing" })
        expect(parentOf(requested)?.spanId).toBe(root!.spanId)
        for (const step of ["CommandHandler.load", "CommandHandler.decide", "CommandHandler.append"]) {
          expect(find(trace, "orders-server", step).some((span) => span.parentSpanId === requested.spanId)).toBe(true)
        }
        const published = one("orders-server", "EventBusKafka.publish")
        expect(published.kind).toBe(PRODUCER_KIND)

        // The projector applies the request, as a consumer under the publish.
        const projected = one("orders-server", "EventBusKafka.handle", { group: "orders.projector" })
        expect(projected.kind).toBe(CONSUMER_KIND)
        expect(projected.parentSpanId).toBe(published.spanId)
        one("orders-server", "Projector.apply")

        // The processor takes the request from the server's publish, works, and records the outcome.
        const delivered = one("orders-processor", "EventBusKafka.handle", { group: "orders.processor" })
        expect(delivered.kind).toBe(CONSUMER_KIND)
        expect(parentOf(delivered)?.service).toBe("orders-server")
        one("orders-processor", "Processor.process")
        one("orders-processor", "Processor.work")
        const completed = one("orders-processor", "CommandHandler.handle", { command: "CompleteProcessing" })
        expect(
          find(trace, "orders-processor", "CommandHandler.append").some((span) =>
            span.parentSpanId === completed.spanId
          )
        ).toBe(true)
        const republished = one("orders-processor", "EventBusKafka.publish")

        // And the server's projector writes the processed order under the processor's publish.
        const processed = processedRow(spans)[0]!
        let ancestor = parentOf(processed)
        while (ancestor !== undefined && ancestor.spanId !== republished.spanId) ancestor = parentOf(ancestor)
        expect(ancestor?.spanId, "the processed row's write descends from the processor's publish").toBe(
          republished.spanId
        )
      }),
    180_000
  )
})
