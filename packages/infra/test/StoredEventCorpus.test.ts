/**
 * Every event any version of the code stored must still be read: the corpus
 * (`corpus/v*`, recorded by `corpus/record.ts`) is decoded as `EventStoreMongo`
 * decodes a commit, and as the Kafka consumer decodes a message, and each
 * stream folds to the order its version recorded.
 */
import { describe, expect, it } from "@effect/vitest"
import { CommandHandler } from "@orders/domain/CommandHandler"
import * as EventBus from "@orders/domain/EventBus"
import * as EventStore from "@orders/domain/EventStore"
import type { FailureReason } from "@orders/domain/Order"
import { fold, OrderId, toOrder } from "@orders/domain/Order"
import { FailProcessing, RequestProcessing } from "@orders/domain/OrderCommand"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import {
  decodeEvent,
  decodeEventJson,
  encodeEvent,
  EventMetadata,
  OrderEventType,
  schemaVersions
} from "@orders/domain/OrderEvent"
import * as OrderReadModel from "@orders/domain/OrderReadModel"
import { project } from "@orders/domain/Projection"
import { Array as Arr, Effect, Layer, Option } from "effect"
import { decodeCommit } from "../src/EventStoreMongo.js"
import { corpusStreams, corpusVersions, readCommits } from "./corpus/corpus.js"

/** The orders each version's corpus holds, and the failures recorded on the way (the recorder's scenario). */
const recorded = (failures: { readonly failed: FailureReason; readonly retried: FailureReason }) => ({
  states: {
    processed: { status: "processed", id: "corpus-processed", name: "Corpus order: processed" },
    failed: { status: "failed", id: "corpus-failed", name: "Corpus order: failed ✗ — café", reason: failures.failed },
    retried: { status: "processed", id: "corpus-retried", name: "Corpus order: failed, then retried" },
    processing: { status: "processing", id: "corpus-processing", name: "Corpus order: processing" }
  } as Record<string, unknown>,
  failures: { failed: [failures.failed], retried: [failures.retried] } as Record<string, ReadonlyArray<FailureReason>>
})

/** A version whose corpus is added gets its expectations here: the test fails until it does. */
const expected: Record<string, ReturnType<typeof recorded>> = {
  // Free-text reasons, upcast to the code of failures recorded without one.
  v1: recorded({
    failed: { code: "unspecified", message: "payment declined by the card issuer" },
    retried: { code: "unspecified", message: "warehouse unreachable" }
  }),
  v2: recorded({
    failed: { code: "payment_declined", message: "payment declined by the card issuer" },
    retried: { code: "warehouse_unreachable", message: "warehouse unreachable" }
  })
}

/** A stream of the corpus, decoded commit by commit as the Mongo event store reads it. */
const decodeStream = (version: string, stream: string) =>
  Effect.map(Effect.forEach(readCommits(version, stream), decodeCommit), Arr.flatten)

const failuresOf = (events: ReadonlyArray<OrderEventEnvelope>) =>
  events.flatMap((event) => event.data._tag === "OrderProcessingFailed" ? [event.data.reason] : [])

describe("The stored-event corpus", () => {
  it("holds at least the versions 1 and 2, each with every event type", () => {
    expect(corpusVersions.slice(0, 2)).toEqual(["v1", "v2"])
    for (const version of corpusVersions) {
      const types = new Set(
        corpusStreams(version).flatMap((stream) =>
          readCommits(version, stream).flatMap((commit) =>
            commit.events.map((event) => (event as { type: string }).type)
          )
        )
      )
      expect([...types].sort(), version).toEqual([...OrderEventType.literals].sort())
    }
  })

  for (const version of corpusVersions) {
    describe(version, () => {
      for (const stream of corpusStreams(version)) {
        it.effect(`${stream}: decodes as the Mongo store decodes a commit, and folds to the order recorded`, () =>
          Effect.gen(function*() {
            const events = yield* decodeStream(version, stream)
            expect(events.map((event) => event.version)).toEqual(events.map((_, i) => i + 1))
            expect(fold(events.map((event) => event.data))).toEqual(expected[version]?.states[stream])
            expect(failuresOf(events)).toEqual(expected[version]?.failures[stream] ?? [])
          }))

        it.effect(`${stream}: each event, as that version's producer sent it on Kafka, decodes the same`, () =>
          Effect.gen(function*() {
            const stored = readCommits(version, stream).flatMap((commit) => commit.events)
            const fromKafka = yield* Effect.forEach(stored, (event) => decodeEventJson(JSON.stringify(event)))
            expect(fromKafka).toEqual(yield* decodeStream(version, stream))
          }))

        it.effect(`${stream}: is written again at the current schema versions only, and reads back the same`, () =>
          Effect.gen(function*() {
            for (const event of yield* decodeStream(version, stream)) {
              const encoded = encodeEvent(event)
              expect(encoded.schemaVersion).toBe(schemaVersions[event.type])
              expect(yield* decodeEvent(encoded)).toEqual(event)
            }
          }))
      }
    })
  }

  it.effect("a stream of v1 events continued by the current code folds through the in-memory store and projection", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.EventStore
      const commands = yield* CommandHandler
      const readModel = yield* OrderReadModel.OrderReadModel
      // Stored by version 1: failed, with a free-text reason.
      for (const commit of readCommits("v1", "failed")) {
        const events = yield* decodeCommit(commit)
        if (Arr.isNonEmptyReadonlyArray(events)) {
          yield* store.append(OrderId.make(commit.streamId), commit.previous, events)
        }
      }
      const orderId = OrderId.make("corpus-failed")
      const metadata = EventMetadata.make({ correlationId: "mixed", causationId: "mixed" })
      const retry = yield* commands.handle(RequestProcessing.make({ orderId }), metadata)
      const outOfStock = { code: "out_of_stock", message: "the last one was sold" }
      yield* commands.handleCausedBy(FailProcessing.make({ orderId, reason: outOfStock }), retry.events[0])

      const history = yield* store.read(orderId)
      expect(failuresOf(history)).toEqual([
        { code: "unspecified", message: "payment declined by the card issuer" },
        outOfStock
      ])
      // The projector's way: one event at a time onto the stored row.
      for (const event of history) {
        const step = project(Option.getOrUndefined(yield* readModel.get(orderId)), event)
        if (step._tag === "Applied") yield* readModel.save(step.order)
      }
      const row = yield* readModel.get(orderId)
      expect(row).toEqual(Option.fromNullable(toOrder(fold(history.map((event) => event.data)), history.length)))
      expect(Option.map(row, (order) => [order.version, order.failure])).toEqual(Option.some([5, outOfStock]))
    }).pipe(
      Effect.provide(
        Layer.mergeAll(CommandHandler.Default, OrderReadModel.layerMemory).pipe(
          Layer.provideMerge(Layer.merge(EventStore.layerMemory, EventBus.layerMemory))
        )
      )
    ))
})
