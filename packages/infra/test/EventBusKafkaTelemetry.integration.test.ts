/**
 * What the Kafka bus tells about its work: the trace context it puts in the
 * headers of each message and continues in its consumers, its consumers'
 * lag per partition, and whether they are members of their groups.
 */
import { NodeSdk, Tracer as OtelTracer } from "@effect/opentelemetry"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as EventBus from "@orders/domain/EventBus"
import { fastDeliveryPolicy } from "@orders/domain/testing/contract/EventBusContract"
import { lifecycle, uniqueOrderId, waitFor } from "@orders/domain/testing/fixtures"
import { Deferred, Duration, Effect, Layer, Metric, MetricLabel, Option } from "effect"
import * as EventBusKafka from "../src/EventBusKafka.js"
import { deleteTopics, readTopic } from "./support/kafka.js"
import { kafkaBrokers } from "./support/stack.js"

const run = crypto.randomUUID().slice(0, 8)
const tracedTopic = `orders.events.test-${run}-traced`
const lagTopic = `orders.events.test-${run}-lag`

const options = (topic: string): EventBusKafka.EventBusKafkaOptions => ({
  brokers: kafkaBrokers,
  clientId: "orders-test",
  topic,
  partitions: 3,
  deliveryPolicy: fastDeliveryPolicy,
  lagInterval: Duration.millis(200)
})

afterAll(() => Effect.runPromise(deleteTopics([tracedTopic, lagTopic].flatMap((topic) => [topic, `${topic}.dlq`]))))

const exporter = new InMemorySpanExporter()
/** An OpenTelemetry tracer whose spans stay in memory, and trace context on the events. */
const tracing = Layer.merge(
  NodeSdk.layer(() => ({ resource: { serviceName: "orders-test" }, spanProcessor: new SimpleSpanProcessor(exporter) })),
  Layer.succeed(EventBus.TraceContextPropagation, true)
)

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"

describe("EventBusKafka's telemetry", () => {
  it.scopedLive(
    "carries the publisher's trace context in the headers and continues it in each consumer",
    () =>
      Effect.gen(function*() {
        const bus = yield* EventBusKafka.make(options(tracedTopic))
        const delivered = yield* Deferred.make<{ readonly parentSpanId: string; readonly vendor: string | undefined }>()
        yield* bus.subscribe("traced", () =>
          Effect.gen(function*() {
            const span = yield* OtelTracer.currentOtelSpan
            const consumer = yield* Effect.currentSpan
            yield* Deferred.succeed(delivered, {
              parentSpanId: Option.getOrThrow(consumer.parent).spanId,
              vendor: span.spanContext().traceState?.get("vendor")
            })
          }))
        const caller = OtelTracer.makeExternalSpan({
          traceId,
          spanId: "00f067aa0ba902b7",
          traceFlags: 1,
          traceState: "vendor=orders"
        })
        const [event] = lifecycle(uniqueOrderId("traced"), 1)
        yield* bus.publish([event!]).pipe(Effect.withParentSpan(caller))

        const [record] = yield* readTopic(tracedTopic, (records) => records.length > 0)
        const publish = exporter.getFinishedSpans().find((span) => span.name === "EventBusKafka.publish")
        expect(publish?.spanContext().traceId).toBe(traceId)
        expect(record!.headers).toMatchObject({
          traceparent: `00-${traceId}-${publish!.spanContext().spanId}-01`,
          tracestate: "vendor=orders",
          correlationId: event!.metadata.correlationId
        })
        expect(yield* Deferred.await(delivered)).toEqual({
          parentSpanId: publish!.spanContext().spanId,
          vendor: "orders"
        })
        const handled = exporter.getFinishedSpans().find((span) => span.name === "EventBusKafka.handle")
        expect(handled?.attributes).toMatchObject({ group: "traced", topic: tracedTopic, offset: "0" })
      }).pipe(Effect.provide(tracing)),
    60_000
  )

  it.scopedLive(
    "reports each partition's lag while its consumer is behind, and its membership while it runs",
    () =>
      Effect.gen(function*() {
        const bus = yield* EventBusKafka.make(options(lagTopic))
        const open = yield* Deferred.make<void>()
        const events = Array.from({ length: 6 }, () => lifecycle(uniqueOrderId("lagging"), 1)[0]!)
        yield* bus.publish(events)
        const subscription = yield* bus.subscribe("lagging", () => Deferred.await(open))
        expect(yield* subscription.joined).toBe(true)

        const lag = Effect.map(
          Effect.forEach([0, 1, 2], (partition) =>
            Metric.value(Metric.taggedWithLabels(EventBusKafka.consumerLag, [
              MetricLabel.make("group", "lagging"),
              MetricLabel.make("topic", lagTopic),
              MetricLabel.make("partition", String(partition))
            ]))),
          (gauges) => gauges.reduce((sum, gauge) => sum + gauge.value, 0)
        )
        // At least once: a producer retry under load may have written the batch twice.
        expect(yield* waitFor(lag, (behind) => behind >= events.length)).toBeGreaterThanOrEqual(events.length)
        yield* Deferred.succeed(open, undefined)
        expect(yield* waitFor(lag, (behind) => behind === 0)).toBe(0)
      }),
    60_000
  )
})
