import { describe, expect, it } from "@effect/vitest"
import { CommandHandler } from "@orders/domain/CommandHandler"
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { CreateOrder, RequestProcessing } from "@orders/domain/OrderCommand"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { projectAll } from "@orders/domain/Projection"
import { metadata, waitFor } from "@orders/domain/testing/fixtures"
import { Context, DateTime, Deferred, Duration, Effect, Either, Fiber, Layer, Option, Ref } from "effect"
import * as ConsistencyCheck from "../src/ConsistencyCheck.js"
import * as EventBusKafka from "../src/EventBusKafka.js"
import * as EventStoreMongo from "../src/EventStoreMongo.js"
import type { CommitDocument } from "../src/EventStoreMongo.js"
import { COMMITS } from "../src/EventStoreMongo.js"
import * as OrderReadModelPg from "../src/OrderReadModelPg.js"
import * as ReadModelRebuild from "../src/ReadModelRebuild.js"
import type { OperatorStack } from "./support/operator.js"
import { freshOperatorStack } from "./support/operator.js"
import { commitOf, seededEvents } from "./support/seedEventStore.js"
import { kafkaBrokers, withMongo } from "./support/stack.js"

const rebuildOn = (stack: OperatorStack, options: ReadModelRebuild.RebuildOptions = {}) =>
  ReadModelRebuild.rebuild(options).pipe(Effect.provide(stack.context))

/** The check of the whole stack, once the projector had time to catch up. */
const consistentSoon = (stack: OperatorStack, groups: ReadonlyArray<string> = []) =>
  waitFor(
    ConsistencyCheck.check({ topic: stack.topic, groups, settle: "200 millis" }).pipe(Effect.provide(stack.context)),
    (report) => report.problems === 0,
    Duration.seconds(60)
  )

/** The tables, function and lock a rebuild leaves while it is not finished. */
const leftovers = (stack: OperatorStack) =>
  stack.sql<{ name: string }>`
    SELECT name FROM unnest(ARRAY['orders_rebuild', 'orders_rebuild_pending', 'orders_rebuild_state']) AS name
    WHERE to_regclass(name) IS NOT NULL
    UNION ALL
    SELECT proname FROM pg_proc WHERE proname = 'orders_rebuild_record'
      AND pronamespace = current_schema()::regnamespace`.pipe(Effect.map((rows) => rows.map((row) => row.name)))

/** The running system of one process: command handler, store, bus and read model, and a projector. */
const runningSystem = (stack: OperatorStack, group: string) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      Layer.mergeAll(CommandHandler.Default, OrderReadModelPg.layer({ url: stack.url })).pipe(
        Layer.provideMerge(Layer.merge(
          EventStoreMongo.layer({ uri: stack.mongo.uri, database: stack.database }),
          EventBusKafka.layer({ brokers: kafkaBrokers, clientId: "orders-test", topic: stack.topic })
        ))
      )
    )
    const store = Context.get(context, EventStore)
    const readModel = Context.get(context, OrderReadModel)
    // The projector's job, done the simplest way: each event folds its stream from the store, up to the event.
    yield* Context.get(context, EventBus).subscribe(group, (event) =>
      store.read(event.streamId).pipe(
        Effect.map((history) => projectAll(undefined, history.filter((stored) => stored.version <= event.version))),
        Effect.flatMap((order) => order === undefined ? Effect.void : readModel.save(order))
      ))
    return { commands: Context.get(context, CommandHandler), readModel }
  })

const create = (commands: CommandHandler, id: string) =>
  commands.handle(CreateOrder.make({ orderId: OrderId.make(id), name: `order ${id}` }), metadata)
const requestProcessing = (commands: CommandHandler, id: string) =>
  commands.handle(RequestProcessing.make({ orderId: OrderId.make(id) }), metadata)

describe("ReadModelRebuild", () => {
  it.scopedLive(
    "restores a read model whose rows were deleted, while commands keep coming and queries answer throughout",
    () =>
      Effect.gen(function*() {
        const stack = yield* freshOperatorStack
        const group = `orders.projector.test-${crypto.randomUUID()}`
        const { commands, readModel } = yield* runningSystem(stack, group)
        const initial = Array.from({ length: 30 }, (_, i) => `first-${i}`)
        yield* Effect.forEach(initial, (id) => create(commands, id), { concurrency: 4, discard: true })
        yield* Effect.forEach(initial.slice(0, 10), (id) => requestProcessing(commands, id), { discard: true })
        yield* waitFor(readModel.list({ limit: 1000 }), (orders) => orders.length === 30)

        yield* stack.sql`DELETE FROM orders`

        // Queries through the read model's own layer, all along: each answer, or its failure.
        const answers = yield* Ref.make<ReadonlyArray<ReadonlyMap<string, number>>>([])
        const failures = yield* Ref.make(0)
        const stopQueries = yield* Deferred.make<void>()
        const queries = yield* readModel.list({ limit: 1000 }).pipe(
          Effect.either,
          Effect.flatMap(Either.match({
            onLeft: () => Ref.update(failures, (n) => n + 1),
            onRight: (orders) =>
              Ref.update(answers, (all) => [...all, new Map(orders.map((order) => [order.id, order.version]))])
          })),
          Effect.zipRight(Effect.sleep("10 millis")),
          Effect.forever,
          Effect.raceFirst(Deferred.await(stopQueries)),
          Effect.fork
        )
        const load = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
          Effect.all([create(commands, `later-${i}`), requestProcessing(commands, `first-${10 + i % 20}`)]).pipe(
            Effect.zipRight(Effect.sleep("20 millis"))
          ), { discard: true }).pipe(Effect.fork)
        // The fill waits after its first batch until the projector has written orders meanwhile.
        const pending = stack.sql<{ count: number }>`SELECT count(*)::int AS count FROM orders_rebuild_pending`
        const summary = yield* rebuildOn(stack, {
          batch: 5,
          progressInterval: Duration.zero,
          onProgress: (progress) =>
            progress.orders === 5
              ? waitFor(pending, ([row]) =>
                row!.count >= 5).pipe(Effect.orDie, Effect.asVoid)
              : Effect.void
        })
        yield* Fiber.join(load)

        const report = yield* consistentSoon(stack, [group])
        yield* Deferred.succeed(stopQueries, undefined)
        yield* Fiber.join(queries)
        expect(report).toMatchObject({ problems: 0, readModel: { rows: 50 }, eventStore: { streams: 50 } })
        expect(summary.orders).toBeGreaterThanOrEqual(30)
        expect(summary.caughtUp).toBeGreaterThanOrEqual(5)
        expect(yield* leftovers(stack)).toEqual([])
        expect(yield* Ref.get(failures)).toBe(0)
        // No answer loses an order, or a version of one, that an earlier answer showed: the switch is atomic.
        const seen = new Map<string, number>()
        const regressions: Array<string> = []
        for (const answer of yield* Ref.get(answers)) {
          for (const [id, version] of seen) {
            const now = answer.get(id)
            if (now === undefined || now < version) {
              regressions.push(`${id}: v${version} then ${now ?? "none"}`)
            }
          }
          for (const [id, version] of answer) {
            seen.set(id, version)
          }
        }
        expect(regressions).toEqual([])
        expect(seen.size).toBe(50)
      }),
    { timeout: 120_000 }
  )

  it.scopedLive("recreates a dropped read-model table", () =>
    Effect.gen(function*() {
      const stack = yield* freshOperatorStack
      const seeded = yield* stack.seed({ orders: 20, prefix: "o" })
      yield* stack.sql`DROP TABLE orders`

      const summary = yield* rebuildOn(stack)
      expect(summary).toMatchObject({ orders: 20, events: seeded.events, resumed: false, caughtUp: 0 })
      const readModel = Context.get(yield* Layer.build(OrderReadModelPg.layer({ url: stack.url })), OrderReadModel)
      expect(yield* readModel.get(OrderId.make("o-3"))).toEqual(Option.some(seeded.orders[3]))
      expect(yield* consistentSoon(stack)).toMatchObject({ problems: 0, readModel: { rows: 20 } })
    }), { timeout: 60_000 })

  it.scopedLive(
    "a rebuild stopped half-way is refused a twin, and ends correct when run again",
    () =>
      Effect.gen(function*() {
        const stack = yield* freshOperatorStack
        yield* stack.seed({ orders: 1_500, prefix: "o" })
        // A wrong row the rebuild must not keep.
        yield* stack.sql`INSERT INTO orders (id, name, status, version) VALUES ('o-2', 'wrong', 'new', 1)`

        const first = yield* rebuildOn(stack, { batch: 10 }).pipe(Effect.fork)
        // Until a batch of the fill is written.
        yield* waitFor(
          Effect.gen(function*() {
            if (!(yield* leftovers(stack)).includes("orders_rebuild_state")) return null
            const [state] = yield* stack.sql<{ fill_after: string | null }>`SELECT fill_after FROM orders_rebuild_state`
            return state?.fill_after ?? null
          }),
          (filledAfter) => filledAfter !== null
        )
        expect(yield* Effect.flip(rebuildOn(stack))).toBeInstanceOf(ReadModelRebuild.RebuildInProgress)
        yield* Fiber.interrupt(first)
        expect(yield* leftovers(stack)).toEqual([
          "orders_rebuild",
          "orders_rebuild_pending",
          "orders_rebuild_state",
          "orders_rebuild_record"
        ])

        // Meanwhile an order is created, before the stream the fill stopped at, and projected to the old table.
        const late = seededEvents("late", 0, yield* DateTime.now)
        yield* withMongo((client) =>
          client.db(stack.database).collection<CommitDocument>(COMMITS).insertOne(commitOf(late))
        )
        yield* stack.project([projectAll(undefined, late)!])
        // And a row no projector wrote: the store has no such order.
        yield* stack.sql`INSERT INTO orders (id, name, status, version) VALUES ('garbage', 'nobody', 'new', 1)`

        const second = yield* rebuildOn(stack, { batch: 10 })
        expect(second.resumed).toBe(true)
        expect(second.orders).toBeLessThan(1_500)
        expect(second.caughtUp).toBe(2)
        expect(yield* leftovers(stack)).toEqual([])
        expect(yield* consistentSoon(stack)).toMatchObject({ problems: 0, readModel: { rows: 1_501 } })
      }),
    { timeout: 120_000 }
  )
})
