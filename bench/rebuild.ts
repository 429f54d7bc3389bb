/**
 * The operator commands on a large event store, from this machine:
 *
 *   npx tsx bench/rebuild.ts                      # 100,000 events
 *   BENCH_EVENTS=20000 npx tsx bench/rebuild.ts
 *
 * Seeds a fresh MongoDB database with commits written directly (`insertMany`
 * in batches, as many appends would have left them), rebuilds the read model
 * of a fresh PostgreSQL schema from it, then checks the two for consistency.
 * Both are dropped at the end. Prints one line per step; nothing is asserted.
 */
import * as ConsistencyCheck from "@orders/infra/ConsistencyCheck"
import { EventStoreScan } from "@orders/infra/EventStoreScan"
import { KafkaAdmin } from "@orders/infra/KafkaAdmin"
import * as OrderReadModelPg from "@orders/infra/OrderReadModelPg"
import * as ReadModelRebuild from "@orders/infra/ReadModelRebuild"
import { eventsPerOrder, seedEventStore } from "@orders/infra/testing/seedEventStore"
import {
  freshMongoDatabase,
  freshPgSchema,
  kafkaBrokers,
  mongoUriFor,
  schemaUrl,
  withMongo
} from "@orders/infra/testing/stack"
import { Effect, Layer, Logger, LogLevel, Redacted } from "effect"

const events = Number(process.env.BENCH_EVENTS ?? 100_000)

const seconds = (started: number) => (performance.now() - started) / 1000
const rate = (count: number, elapsed: number) => Math.round(count / elapsed).toLocaleString("en-US")

const program = Effect.gen(function*() {
  const database = yield* freshMongoDatabase
  const schema = yield* freshPgSchema()
  const orders = Math.ceil(events / eventsPerOrder)

  let started = performance.now()
  const seeded = yield* withMongo((client) =>
    Effect.runPromise(seedEventStore(client.db(database), { orders, prefix: "bench", batch: 2_000 }))
  )
  const seeding = seconds(started)
  console.log(
    `seeded    ${seeded.events} events (${orders} orders) in ${seeding.toFixed(1)} s: ${
      rate(seeded.events, seeding)
    } events/s`
  )

  const layers = Layer.mergeAll(
    EventStoreScan.Default({ uri: mongoUriFor(database), database }),
    OrderReadModelPg.sqlLayer({ url: Redacted.make(schemaUrl(schema)) }),
    KafkaAdmin.Default({ brokers: kafkaBrokers, clientId: "orders-bench" })
  )
  yield* Effect.gen(function*() {
    started = performance.now()
    const summary = yield* ReadModelRebuild.rebuild({
      onProgress: (progress) => Effect.sync(() => console.log(`          ${ReadModelRebuild.formatProgress(progress)}`))
    })
    console.log(`rebuilt   in ${seconds(started).toFixed(1)} s in all: ${ReadModelRebuild.formatSummary(summary)}`)

    started = performance.now()
    const report = yield* ConsistencyCheck.check({
      topic: `bench.absent.${database}`,
      groups: [],
      settle: "1 second",
      // The seeded orders in `processing` are not stuck: the bench made them minutes ago.
      stuckAfter: "1 day"
    })
    const checking = seconds(started)
    console.log(
      `checked   ${report.eventStore.events} events, ${report.readModel.rows} rows in ${checking.toFixed(1)} s: ${
        rate(report.eventStore.events, checking)
      } events/s, ${report.problems} problems`
    )
  }).pipe(Effect.provide(layers))
})

await Effect.runPromise(program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)))
