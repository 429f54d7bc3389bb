import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Either, Exit, FastCheck, Fiber, Layer, Ref, Scope, TestClock } from "effect"
import { CommandHandler, marksDrainTimeout, publishTimeout } from "../src/CommandHandler.js"
import * as EventBus from "../src/EventBus.js"
import * as EventStore from "../src/EventStore.js"
import { fold, toOrder } from "../src/Order.js"
import { CompleteProcessing, CreateOrder, RequestProcessing } from "../src/OrderCommand.js"
import { ServiceUnavailable } from "../src/OrderError.js"
import type { OrderEventEnvelope } from "../src/OrderEvent.js"
import { decodeEvent, encodeEvent, EventMetadata } from "../src/OrderEvent.js"
import { commandHandlerInMemory, lifecycle, metadata, racingCommandHandler, uniqueOrderId } from "./fixtures.js"
import { commandArbitrary } from "./generators.js"

const withBus = commandHandlerInMemory
const memory = commandHandlerInMemory()

const down = new ServiceUnavailable({ service: "test bus", message: "down" })

/** A bus that answers `publish` with `outcome`, and cannot be subscribed to. */
const busThat = (publish: EventBus.EventBusShape["publish"]) =>
  Layer.succeed(EventBus.EventBus, {
    publish,
    subscribe: () => Effect.fail(down),
    subscribeDeadLetters: () => Effect.fail(down)
  })

/** The versions of the order still in the outbox, once the marks the handler left running have had their turn. */
const pendingVersions = (orderId: string) =>
  Effect.repeatN(Effect.yieldNow(), 20).pipe(
    Effect.zipRight(EventStore.EventStore),
    Effect.flatMap((store) => store.unpublished(100)),
    Effect.map((events) => events.filter((event) => event.streamId === orderId).map((event) => event.version))
  )

/** A command handler on `store` in a scope of its own, which has created an order: the test closes the scope. */
const createInOwnScope = (store: EventStore.EventStoreShape) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(CommandHandler.Default, scope).pipe(
      Effect.provideService(EventStore.EventStore, store),
      Effect.provideService(EventBus.EventBus, yield* EventBus.makeMemory())
    )
    const orderId = uniqueOrderId()
    yield* Context.get(context, CommandHandler).handle(CreateOrder.make({ orderId, name: "book" }), metadata)
    return { orderId, scope }
  })

describe("CommandHandler", () => {
  it.effect("creates an order, stores and publishes its event, and marks it published", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const result = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      expect(result.order).toMatchObject({ id: orderId, name: "book", status: "new", version: 1 })
      const [event] = yield* store.read(orderId)
      expect(event).toMatchObject({ streamId: orderId, version: 1, type: "OrderCreated", metadata })
      expect(yield* pendingVersions(orderId)).toEqual([])
    }).pipe(Effect.provide(memory)))

  it.effect("appends nothing when the decision is a refusal", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const refused = yield* Effect.either(handler.handle(RequestProcessing.make({ orderId }), metadata))
      expect(Either.isLeft(refused) && refused.left._tag).toBe("OrderNotFound")
      yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const duplicate = yield* Effect.either(handler.handle(CreateOrder.make({ orderId, name: "pen" }), metadata))
      expect(Either.isLeft(duplicate) && duplicate.left._tag).toBe("OrderAlreadyExists")
      expect((yield* store.read(orderId)).map((event) => event.type)).toEqual(["OrderCreated"])
    }).pipe(Effect.provide(memory)))

  it.live("decides again after losing a race: the losers of racing creates hear 'already exists'", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const creates = yield* Effect.all(
        Array.from(
          { length: 8 },
          () => Effect.either(handler.handle(CreateOrder.make({ orderId, name: "x" }), metadata))
        ),
        { concurrency: "unbounded" }
      )
      expect(creates.filter(Either.isRight)).toHaveLength(1)
      expect(creates.filter(Either.isLeft).map((result) => result.left._tag)).toEqual(
        Array.from({ length: 7 }, () => "OrderAlreadyExists")
      )
      const requests = yield* Effect.all(
        Array.from({ length: 8 }, () => Effect.either(handler.handle(RequestProcessing.make({ orderId }), metadata))),
        { concurrency: "unbounded" }
      )
      expect(requests.filter(Either.isLeft).map((result) => result.left._tag)).toEqual(
        Array.from({ length: 7 }, () => "InvalidOrderTransition")
      )
      expect((yield* store.read(orderId)).map((event) => event.version)).toEqual([1, 2])
    }).pipe(Effect.provide(racingCommandHandler)))

  it.effect("accepts the command when the bus is down, leaving the event in the outbox", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const orderId = uniqueOrderId()
      const result = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      expect(result.order.status).toBe("new")
      expect(yield* pendingVersions(orderId)).toEqual([1])
    }).pipe(Effect.provide(withBus(busThat(() => Effect.fail(down))))))

  it.effect("answers within the publish timeout when the bus hangs, leaving the event in the outbox", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const orderId = uniqueOrderId()
      const fiber = yield* Effect.fork(handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata))
      yield* TestClock.adjust(publishTimeout)
      const result = yield* Fiber.join(fiber)
      expect(result.order.status).toBe("new")
      expect(yield* pendingVersions(orderId)).toEqual([1])
    }).pipe(Effect.provide(withBus(busThat(() => Effect.never)))))

  it.effect("marks only what the bus acknowledged: a failed publish stays in the outbox after a later success", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const orderId = uniqueOrderId()
      yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      yield* handler.handle(RequestProcessing.make({ orderId }), metadata)
      expect(yield* pendingVersions(orderId)).toEqual([1])
    }).pipe(Effect.provide(Layer.unwrapEffect(Effect.gen(function*() {
      const publishes = yield* Ref.make(0)
      // The first publish fails, every later one succeeds.
      return withBus(busThat(() =>
        Ref.getAndUpdate(publishes, (n) => n + 1).pipe(
          Effect.flatMap((n) => n === 0 ? Effect.fail(down) : Effect.void)
        )
      ))
    })))))

  it.live("lets the marks it started land when it stops: the next run publishes nothing again", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.makeMemory({ grace: Duration.zero })
      const { orderId, scope } = yield* createInOwnScope({
        ...store,
        markPublished: (events) => Effect.delay(store.markPublished(events), Duration.millis(50))
      })
      yield* Scope.close(scope, Exit.void)
      const pending = yield* store.unpublished(100)
      expect(pending.filter((event) => event.streamId === orderId)).toEqual([])
    }))

  it.effect("stops within its bound when a mark never lands, leaving the event to the relay", () =>
    Effect.gen(function*() {
      const store = yield* EventStore.makeMemory({ grace: Duration.zero })
      const { orderId, scope } = yield* createInOwnScope({ ...store, markPublished: () => Effect.never })
      const stopping = yield* Effect.fork(Scope.close(scope, Exit.void))
      // The stop reaches its wait first.
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* TestClock.adjust(marksDrainTimeout)
      yield* Fiber.join(stopping)
      const pending = yield* store.unpublished(100)
      expect(pending.filter((event) => event.streamId === orderId).map((event) => event.version)).toEqual([1])
    }))

  it.effect("refuses to decide on a read that does not yet show the event that caused the command", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      const { events: [created] } = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      // A processing request at version 2 that this read of the store does not contain.
      const unseen = { ...created, version: 2, eventId: crypto.randomUUID() } as OrderEventEnvelope
      const stale = yield* Effect.either(handler.handleCausedBy(CompleteProcessing.make({ orderId }), unseen))
      expect(Either.isLeft(stale) && stale.left).toMatchObject({ _tag: "StaleRead", version: 2, found: 1 })
      expect(yield* store.read(orderId)).toHaveLength(1)
    }).pipe(Effect.provide(memory)))

  it.effect("carries the cause's correlation id, and the cause as causation", () =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const orderId = uniqueOrderId()
      yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
      const { events: [request] } = yield* handler.handle(RequestProcessing.make({ orderId }), metadata)
      const { events: [outcome] } = yield* handler.handleCausedBy(CompleteProcessing.make({ orderId }), request)
      expect(outcome.metadata).toEqual({
        correlationId: metadata.correlationId,
        causationId: request.eventId,
        append: { first: 3, last: 3 }
      })
    }).pipe(Effect.provide(memory)))

  it.effect.prop("the stream holds one event per accepted command, and folds to the order last returned", [
    FastCheck.array(commandArbitrary, { minLength: 1, maxLength: 12 })
  ], ([commands]) =>
    Effect.gen(function*() {
      const handler = yield* CommandHandler
      const store = yield* EventStore.EventStore
      const orderId = uniqueOrderId()
      let accepted = 0
      let last: unknown = undefined
      for (const command of commands) {
        const result = yield* Effect.either(handler.handle({ ...command, orderId }, metadata))
        if (Either.isRight(result)) {
          accepted += 1
          last = result.right.order
        }
      }
      const stored = yield* store.read(orderId)
      expect(stored).toHaveLength(accepted)
      expect(toOrder(fold(stored.map((event) => event.data)), stored.length)).toEqual(last)
    }).pipe(Effect.provide(memory)))

  describe("idempotency keys and expected versions", () => {
    const keyed = (idempotencyKey: string) => EventMetadata.make({ ...metadata, idempotencyKey })

    it.effect("answers a keyed command again with its first result, appending and publishing nothing", () =>
      Effect.gen(function*() {
        const handler = yield* CommandHandler
        const store = yield* EventStore.EventStore
        const orderId = uniqueOrderId()
        const first = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), keyed("k1"))
        yield* handler.handle(RequestProcessing.make({ orderId }), metadata)
        const again = yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), keyed("k1"))
        expect(again).toEqual({ ...first, replayed: true })
        expect(first.replayed).toBe(false)
        const stored = yield* store.read(orderId)
        expect(stored.map((event) => event.version)).toEqual([1, 2])
        expect(stored[0]!.metadata).toMatchObject({
          idempotencyKey: "k1",
          requestHash: expect.stringMatching(/^[0-9a-f]{64}$/)
        })
      }).pipe(Effect.provide(memory)))

    it.effect("refuses a key used for another command on the order, and appends nothing", () =>
      Effect.gen(function*() {
        const handler = yield* CommandHandler
        const store = yield* EventStore.EventStore
        const orderId = uniqueOrderId()
        yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), keyed("k2"))
        const other = yield* Effect.flip(handler.handle(CreateOrder.make({ orderId, name: "pen" }), keyed("k2")))
        expect(other).toMatchObject({ _tag: "IdempotencyKeyReused", orderId, idempotencyKey: "k2" })
        const process = yield* Effect.flip(handler.handle(RequestProcessing.make({ orderId }), keyed("k2")))
        expect(process._tag).toBe("IdempotencyKeyReused")
        expect(yield* store.read(orderId)).toHaveLength(1)
      }).pipe(Effect.provide(memory)))

    it.live("finds the key after losing a race: concurrent retries append once and all succeed", () =>
      Effect.gen(function*() {
        const handler = yield* CommandHandler
        const store = yield* EventStore.EventStore
        const orderId = uniqueOrderId()
        const results = yield* Effect.all(
          Array.from({ length: 6 }, () => handler.handle(CreateOrder.make({ orderId, name: "x" }), keyed("k3"))),
          { concurrency: "unbounded" }
        )
        expect(results.map((result) => result.order.version)).toEqual(Array.from({ length: 6 }, () => 1))
        expect(results.filter((result) => !result.replayed)).toHaveLength(1)
        expect(yield* store.read(orderId)).toHaveLength(1)
      }).pipe(Effect.provide(racingCommandHandler)))

    it.effect("decides only on the expected version: any other is VersionMismatch, and nothing is appended", () =>
      Effect.gen(function*() {
        const handler = yield* CommandHandler
        const store = yield* EventStore.EventStore
        const orderId = uniqueOrderId()
        yield* handler.handle(CreateOrder.make({ orderId, name: "book" }), metadata)
        const stale = yield* Effect.flip(
          handler.handle(RequestProcessing.make({ orderId }), metadata, { expectedVersion: 0 })
        )
        expect(stale).toMatchObject({ _tag: "VersionMismatch", expectedVersion: 0, actualVersion: 1 })
        expect(yield* store.read(orderId)).toHaveLength(1)
        const accepted = yield* handler.handle(RequestProcessing.make({ orderId }), metadata, { expectedVersion: 1 })
        expect(accepted.order.version).toBe(2)
      }).pipe(Effect.provide(memory)))

    it.effect("decodes envelopes stored before keys existed, and keeps the key through encoding", () =>
      Effect.gen(function*() {
        const orderId = uniqueOrderId()
        const old = encodeEvent(lifecycle(orderId, 1)[0]!)
        const { idempotencyKey: _key, requestHash: _hash, ...oldMetadata } = old.metadata
        const decoded = yield* decodeEvent({ ...old, metadata: oldMetadata })
        expect(decoded.metadata.idempotencyKey).toBeUndefined()
        const withKey = { ...old, metadata: { ...oldMetadata, idempotencyKey: "k4", requestHash: "ab" } }
        expect(encodeEvent(yield* decodeEvent(withKey)).metadata).toEqual(withKey.metadata)
      }))
  })
})
