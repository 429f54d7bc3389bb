/**
 * A store that holds events of several schema versions, as any store does
 * after an upgrade: the v1 corpus as version 1 stored it, streams continued
 * and begun by the current code, and the read model rebuilt from all of it.
 */
import { describe, expect, it } from "@effect/vitest"
import { CommandHandler } from "@orders/domain/CommandHandler"
import * as EventBus from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import { OrderId } from "@orders/domain/Order"
import { CreateOrder, FailProcessing, RequestProcessing } from "@orders/domain/OrderCommand"
import { EventMetadata } from "@orders/domain/OrderEvent"
import { OrderReadModel } from "@orders/domain/OrderReadModel"
import { projectAll } from "@orders/domain/Projection"
import { Context, Effect, Layer } from "effect"
import * as EventStoreMongo from "../src/EventStoreMongo.js"
import { COMMITS } from "../src/EventStoreMongo.js"
import * as OrderReadModelPg from "../src/OrderReadModelPg.js"
import * as ReadModelRebuild from "../src/ReadModelRebuild.js"
import { corpusStreams, storedCommits } from "./corpus/corpus.js"
import { freshOperatorStack } from "./support/operator.js"
import { withMongo } from "./support/stack.js"

const metadata = EventMetadata.make({ correlationId: "mixed-versions", causationId: "mixed-versions" })

describe("A store of mixed schema versions", () => {
  it.scopedLive(
    "rebuilds the read model as the fold of its events, every version upcast",
    () =>
      Effect.gen(function*() {
        const stack = yield* freshOperatorStack
        // Version 1's documents, stored as they were: no outbox markers, all of it published long ago.
        const v1 = corpusStreams("v1").flatMap((stream) => storedCommits("v1", stream))
        yield* withMongo((client) => client.db(stack.database).collection(COMMITS).insertMany([...v1]))

        const context = yield* Layer.build(
          CommandHandler.Default.pipe(
            Layer.provideMerge(Layer.merge(
              EventStoreMongo.layer({ uri: stack.mongo.uri, database: stack.database }),
              EventBus.layerMemory
            ))
          )
        )
        const commands = Context.get(context, CommandHandler)
        const store = Context.get(context, EventStore)
        // A stream version 1 left processing fails now, with a code; another is begun and fails.
        const processing = OrderId.make("corpus-processing")
        const [, requested] = yield* store.read(processing)
        const declined = { code: "payment_declined", message: "declined by the bank" }
        yield* commands.handleCausedBy(FailProcessing.make({ orderId: processing, reason: declined }), requested!)
        const fresh = OrderId.make("mixed-fresh")
        yield* commands.handle(CreateOrder.make({ orderId: fresh, name: "begun after the upgrade" }), metadata)
        const { events: [freshRequest] } = yield* commands.handle(RequestProcessing.make({ orderId: fresh }), metadata)
        const outOfStock = { code: "out_of_stock", message: "none left" }
        yield* commands.handleCausedBy(FailProcessing.make({ orderId: fresh, reason: outOfStock }), freshRequest)

        const versionsOf = (streamId: string) =>
          withMongo((client) =>
            client.db(stack.database).collection(COMMITS).find({ streamId }).sort({ previous: 1 }).toArray()
          ).pipe(Effect.map((commits) =>
            commits.flatMap((commit) =>
              (commit.events as Array<{ schemaVersion?: number }>).map((event) => event.schemaVersion)
            )
          ))
        // One stream, three events written by version 1 without a schema version, one by the current code.
        expect(yield* versionsOf(processing)).toEqual([undefined, undefined, 2])

        const summary = yield* ReadModelRebuild.rebuild().pipe(Effect.provide(stack.context))
        expect(summary).toMatchObject({ orders: 5, events: 3 + 3 + 5 + 3 + 3, brokenStreams: 0 })

        const readModel = Context.get(yield* Layer.build(OrderReadModelPg.layer({ url: stack.url })), OrderReadModel)
        const rows = yield* readModel.list({ limit: 100 })
        const streams = ["corpus-failed", "corpus-processed", "corpus-processing", "corpus-retried", "mixed-fresh"]
        const folds = yield* Effect.forEach(streams, (id) =>
          Effect.map(store.read(OrderId.make(id)), (history) =>
            projectAll(undefined, history)))
        expect(rows).toEqual(folds)
        expect(rows.map((order) => [order.id, order.status, order.failure])).toEqual([
          ["corpus-failed", "failed", { code: "unspecified", message: "payment declined by the card issuer" }],
          ["corpus-processed", "processed", undefined],
          ["corpus-processing", "failed", declined],
          ["corpus-retried", "processed", undefined],
          ["mixed-fresh", "failed", outOfStock]
        ])
        expect(
          yield* stack.sql`SELECT id, failure_code, failure_reason FROM orders WHERE status = 'failed' ORDER BY id`
        )
          .toEqual([
            { id: "corpus-failed", failure_code: "unspecified", failure_reason: "payment declined by the card issuer" },
            { id: "corpus-processing", failure_code: "payment_declined", failure_reason: "declined by the bank" },
            { id: "mixed-fresh", failure_code: "out_of_stock", failure_reason: "none left" }
          ])
      }),
    { timeout: 60_000 }
  )
})
