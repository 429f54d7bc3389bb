import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, LogLevel, Schedule } from "effect"
import * as EventBus from "../src/EventBus.js"
import { eventBusProperties, fastDeliveryPolicy } from "./contract/EventBusContract.js"
import { propertyVerdict } from "./fixtures.js"

/** A bus with one flaw, made by altering the honest in-memory bus, and the contract property that must catch it. */
interface WrongBus {
  readonly flaw: string
  readonly caughtBy: keyof typeof eventBusProperties
  readonly alter: (bus: EventBus.EventBusShape) => Effect.Effect<EventBus.EventBusShape>
}

/** The bus with every subscriber's handler wrapped. */
const wrappingHandlers = (
  bus: EventBus.EventBusShape,
  wrap: <R>(handler: EventBus.EventHandler<R>) => EventBus.EventHandler<R>
): EventBus.EventBusShape => ({ ...bus, subscribe: (group, handler) => bus.subscribe(group, wrap(handler)) })

const wrongBuses: ReadonlyArray<WrongBus> = [
  {
    flaw: "delivers each published batch in reverse",
    caughtBy: "delivers every event to every consumer group, in order per order",
    alter: (bus) => Effect.succeed({ ...bus, publish: (events) => bus.publish([...events].reverse()) })
  },
  {
    flaw: "replays everything when a group subscribes again",
    caughtBy: "resumes a consumer group after the last event it finished",
    alter: (bus) =>
      Effect.succeed({
        ...bus,
        // Each subscription a group of its own, so it starts at the beginning.
        subscribe: (group, handler) => Effect.suspend(() => bus.subscribe(`${group}-${crypto.randomUUID()}`, handler))
      })
  },
  {
    flaw: "drops an event whose handler failed instead of retrying it",
    caughtBy: "retries a failing handler, and delivers the order's later events only after it",
    alter: (bus) =>
      Effect.succeed(wrappingHandlers(bus, (handler) => (event) => Effect.ignore(Effect.sandbox(handler(event)))))
  },
  {
    flaw: "retries a failing handler for ever, never parking its event",
    caughtBy: "parks an event whose handler keeps failing, then goes on with its order; other orders are not held up",
    alter: (bus) =>
      Effect.succeed(
        wrappingHandlers(bus, (handler) => (event) =>
          handler(event).pipe(Effect.sandbox, Effect.retry(Schedule.spaced(fastDeliveryPolicy.backoff))))
      )
  },
  {
    // What the in-memory bus did before the delivery policy.
    flaw: "stalls an order for ever after a handler defect",
    caughtBy: "treats a handler defect like a failure: retried, then parked, and the consumer goes on",
    alter: (bus) =>
      Effect.succeed(
        wrappingHandlers(bus, (handler) => (event) => Effect.catchAllDefect(handler(event), () => Effect.never))
      )
  },
  {
    flaw: "handles one event at a time",
    caughtBy: "handles different orders concurrently",
    alter: (bus) =>
      Effect.map(
        Effect.makeSemaphore(1),
        (one) => wrappingHandlers(bus, (handler) => (event) => one.withPermits(1)(handler(event)))
      )
  }
]

const check = (property: WrongBus["caughtBy"], bus: Effect.Effect<EventBus.EventBusShape>) =>
  eventBusProperties[property](fastDeliveryPolicy).pipe(
    Effect.scoped,
    Effect.provideServiceEffect(EventBus.EventBus, bus),
    Effect.exit,
    Effect.map(propertyVerdict),
    // The flawed buses' handler failures are expected: their logs would only bury the verdicts.
    Logger.withMinimumLogLevel(LogLevel.None)
  )

// Concurrent: each flawed bus makes its property wait out its patience.
describe.concurrent("each EventBus contract property can fail", () => {
  for (const { alter, caughtBy, flaw } of wrongBuses) {
    it.live(`"${caughtBy}" holds for the in-memory bus, and fails for one that ${flaw}`, () =>
      Effect.gen(function*() {
        const honest = EventBus.makeMemory(fastDeliveryPolicy)
        expect(yield* check(caughtBy, honest)).toBe("holds")
        expect(yield* check(caughtBy, Effect.flatMap(honest, alter))).toBe("fails an assertion")
      }), 30_000)
  }
})
