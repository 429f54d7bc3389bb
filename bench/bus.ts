/**
 * Throughput and latency of the EventBus port on Kafka, from this machine.
 *
 *   npx tsx bench/bus.ts                                  # packages/infra/src/EventBusKafka.ts
 *   BENCH_BUS_MODULE=packages/infra/src/Other.ts npx tsx bench/bus.ts
 *
 * BENCH_BUS_MODULE names another adapter exporting the same `layer(options)`,
 * for comparisons. KAFKA_BROKERS (default 127.0.0.1:9092), BENCH_EVENTS
 * (default 2000) and BENCH_PUBLISHERS (default 32) shape the runs. Each run
 * uses a fresh topic of 12 partitions, deleted afterwards. Prints one line per
 * scenario; nothing is asserted.
 */
import type { EventBusShape } from "@orders/domain/EventBus"
import { EventBus } from "@orders/domain/EventBus"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { lifecycle, uniqueOrderId } from "@orders/domain/testing/fixtures"
import * as EventBusKafka from "@orders/infra/EventBusKafka"
import { deleteTopics } from "@orders/infra/testing/kafka"
import { kafkaBrokers } from "@orders/infra/testing/stack"
import type { Layer } from "effect"
import { Deferred, Duration, Effect, Logger, LogLevel } from "effect"
import { pathToFileURL } from "node:url"

const events = Number(process.env.BENCH_EVENTS ?? 2_000)
const publishers = Number(process.env.BENCH_PUBLISHERS ?? 32)
const otherModule = process.env.BENCH_BUS_MODULE
const adapter: { readonly layer: (options: EventBusKafka.EventBusKafkaOptions) => Layer.Layer<EventBus, unknown> } =
  otherModule === undefined ? EventBusKafka : await import(pathToFileURL(otherModule).href)
const topic = `orders.events.bench-${crypto.randomUUID().slice(0, 8)}`

const now = Effect.sync(() => performance.now())

/** `count` fresh OrderCreated events, each of its own order. */
const freshEvents = (count: number): ReadonlyArray<OrderEventEnvelope> =>
  Array.from({ length: count }, () => lifecycle(uniqueOrderId("bench"), 1)[0]!)

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN

const report = (scenario: string, count: number, elapsedMs: number, latenciesMs: Array<number>) => {
  const sorted = latenciesMs.sort((a, b) => a - b)
  const columns = [
    String(count).padStart(7),
    Math.round(count / (elapsedMs / 1000)).toString().padStart(10),
    percentile(sorted, 0.5).toFixed(2).padStart(8),
    percentile(sorted, 0.99).toFixed(2).padStart(8)
  ]
  console.log(`${scenario.padEnd(44)}${columns.join("")}`)
}

/** Publishes each event on its own, `concurrency` publishers at a time; returns the latencies and the elapsed time. */
const publishEach = (bus: EventBusShape, batch: ReadonlyArray<OrderEventEnvelope>, concurrency: number) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    const started = yield* now
    yield* Effect.forEach(batch, (event) =>
      Effect.gen(function*() {
        const sent = yield* now
        yield* bus.publish([event])
        latencies.push((yield* now) - sent)
      }), { concurrency, discard: true })
    return { latencies, elapsed: (yield* now) - started }
  })

const program = Effect.gen(function*() {
  const bus = yield* EventBus
  console.log(
    `adapter ${otherModule ?? "@orders/infra/EventBusKafka"}, Kafka ${kafkaBrokers.join(",")}, topic ${topic}`
  )
  console.log(
    `${"scenario".padEnd(44)}${"events".padStart(7)}${"events/s".padStart(10)}${"p50 ms".padStart(8)}${
      "p99 ms".padStart(8)
    }`
  )
  // Connections, metadata and the JIT warm up first.
  yield* publishEach(bus, freshEvents(100), 1)

  const sequential = yield* publishEach(bus, freshEvents(events), 1)
  report("publish, one event at a time", sequential.latencies.length, sequential.elapsed, sequential.latencies)

  const concurrent = yield* publishEach(bus, freshEvents(events), publishers)
  report(`publish, ${publishers} concurrent publishers`, events, concurrent.elapsed, concurrent.latencies)

  const endToEnd = freshEvents(events)
  const sentAt = new Map<string, number>()
  const deliveries: Array<number> = []
  const allDelivered = yield* Deferred.make<void>()
  yield* bus.subscribe(`bench-${crypto.randomUUID()}`, (event) =>
    Effect.gen(function*() {
      const sent = sentAt.get(event.eventId)
      if (sent === undefined) return
      sentAt.delete(event.eventId)
      deliveries.push((yield* now) - sent)
      if (deliveries.length === endToEnd.length) yield* Deferred.succeed(allDelivered, undefined)
    }))
  const started = yield* now
  yield* Effect.forEach(endToEnd, (event) =>
    now.pipe(
      Effect.tap((sent) => Effect.sync(() => sentAt.set(event.eventId, sent))),
      Effect.zipRight(bus.publish([event]))
    ), { concurrency: publishers, discard: true })
  yield* Deferred.await(allDelivered).pipe(Effect.timeout(Duration.minutes(2)))
  report(`publish → handler, ${publishers} publishers`, deliveries.length, (yield* now) - started, deliveries)
})

await Effect.runPromise(
  program.pipe(
    Effect.scoped,
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.provide(adapter.layer({ brokers: kafkaBrokers, clientId: "orders-bench", topic })),
    Effect.ensuring(deleteTopics([topic, `${topic}.dlq`]))
  )
)
