/** The series the domain keeps (commands, conflicts, appends, handler retries, parked messages) move as they say. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Metric, MetricLabel } from "effect"
import { CommandHandler, commandsHandled, concurrencyConflicts, eventsAppended } from "../src/CommandHandler.js"
import * as EventBus from "../src/EventBus.js"
import { CreateOrder, RequestProcessing } from "../src/OrderCommand.js"
import { fastDeliveryPolicy } from "./contract/EventBusContract.js"
import {
  commandHandlerInMemory,
  lifecycle,
  metadata,
  racingCommandHandler,
  uniqueOrderId,
  waitFor
} from "./fixtures.js"

/** The count of `counter` with `labels`: the registry is the process's, so tests compare before and after. */
const countOf = (counter: Metric.Metric.Counter<number>, labels: Record<string, string>) =>
  Effect.map(
    Metric.value(
      Metric.taggedWithLabels(counter, Object.entries(labels).map(([key, value]) => MetricLabel.make(key, value)))
    ),
    (state) => state.count
  )

/** How much each of `counts` grew while `effect` ran. */
const growth = <A, E, R>(counts: ReadonlyArray<Effect.Effect<number>>, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* Effect.all(counts)
    yield* effect
    const after = yield* Effect.all(counts)
    return after.map((count, i) => count - before[i]!)
  })

describe("the domain's metrics", () => {
  it.effect("count commands by type and outcome, and the events appended by type", () =>
    Effect.gen(function*() {
      const commands = yield* CommandHandler
      const orderId = uniqueOrderId("counted")
      const create = CreateOrder.make({ orderId, name: "book" })
      const keyed = { ...metadata, idempotencyKey: "k-1" }
      expect(
        yield* growth(
          [
            countOf(commandsHandled, { command: "CreateOrder", outcome: "accepted" }),
            countOf(commandsHandled, { command: "CreateOrder", outcome: "replayed" }),
            countOf(commandsHandled, { command: "CreateOrder", outcome: "OrderAlreadyExists" }),
            countOf(commandsHandled, { command: "RequestProcessing", outcome: "OrderNotFound" }),
            countOf(eventsAppended, { type: "OrderCreated" })
          ],
          Effect.all([
            commands.handle(create, keyed),
            commands.handle(create, keyed),
            Effect.flip(commands.handle(create, metadata)),
            Effect.flip(commands.handle(RequestProcessing.make({ orderId: uniqueOrderId("absent") }), metadata))
          ])
        )
      ).toEqual([1, 1, 1, 1, 1])
    }).pipe(Effect.provide(commandHandlerInMemory())))

  it.effect("count the appends that lost a race", () =>
    Effect.gen(function*() {
      const commands = yield* CommandHandler
      const orderId = uniqueOrderId("raced")
      const creates = Array.from({ length: 4 }, () =>
        commands.handle(CreateOrder.make({ orderId, name: "book" }), metadata))
      const [conflicts, accepted] = yield* growth(
        [
          countOf(concurrencyConflicts, { command: "CreateOrder" }),
          countOf(commandsHandled, { command: "CreateOrder", outcome: "accepted" })
        ],
        Effect.all(creates.map(Effect.either), { concurrency: "unbounded" })
      )
      expect(accepted).toBe(1)
      expect(conflicts).toBeGreaterThanOrEqual(3)
    }).pipe(Effect.provide(
      racingCommandHandler
    )))

  it.live("count a failing handler's retries, and the message it parks", () =>
    Effect.gen(function*() {
      const bus = yield* EventBus.makeMemory(fastDeliveryPolicy)
      const counts = [
        countOf(EventBus.handlerRetries, { group: "failing" }),
        countOf(EventBus.parkedMessages, { group: "failing" })
      ]
      const before = yield* Effect.all(counts)
      yield* bus.subscribe("failing", () => Effect.fail(new Error("a poison message")))
      yield* bus.publish(lifecycle(uniqueOrderId("poison"), 1))
      const after = yield* waitFor(
        Effect.all(counts),
        ([, parked]) => parked! > before[1]!,
        Duration.seconds(10)
      )
      // Three attempts: two retries, then parked.
      expect(after.map((count, i) => count - before[i]!)).toEqual([fastDeliveryPolicy.attempts - 1, 1])
    }).pipe(Effect.scoped))
})
