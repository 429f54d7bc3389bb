/**
 * The order processor: takes processing requests from the bus, mocks the work,
 * and records the outcome through the same command handler as the API.
 */
import { CommandHandler } from "@orders/domain/CommandHandler"
import { EventBus } from "@orders/domain/EventBus"
import { EventStore } from "@orders/domain/EventStore"
import type { FailureReason } from "@orders/domain/Order"
import { CompleteProcessing, FailProcessing } from "@orders/domain/OrderCommand"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { traced } from "@orders/domain/Tracing"
import { requireMembership } from "@orders/infra/Health"
import { Workers } from "@orders/infra/Workers"
import { Config, Duration, Effect, Layer, Random } from "effect"

export interface ProcessorOptions {
  /** How long the mocked work takes. */
  readonly delay: Duration.Duration
  /** Share of orders whose processing fails (0-1), to exercise the failure path. */
  readonly failureRate: number
}

export const ProcessorConfig: Config.Config<ProcessorOptions> = Config.all({
  delay: Config.duration("PROCESSING_DELAY").pipe(Config.withDefault(Duration.millis(200))),
  failureRate: Config.number("PROCESSING_FAILURE_RATE").pipe(
    Config.withDefault(0),
    Config.validate({
      message: "PROCESSING_FAILURE_RATE must be between 0 and 1",
      validation: (rate) => rate >= 0 && rate <= 1
    })
  )
})

/** The processor's consumer group: namespaced, so that it cannot collide with another service's on a shared cluster. */
export const ProcessorGroup = Config.string("PROCESSOR_GROUP").pipe(Config.withDefault("orders.processor"))

/** The failure the mocked work records: its code says it was simulated, so that nobody takes it for a real one. */
export const mockFailure: FailureReason = { code: "simulated_failure", message: "mock processing failed" }

export const makeProcessor = (options: ProcessorOptions) =>
  Effect.gen(function*() {
    const commands = yield* CommandHandler
    const store = yield* EventStore
    return Effect.fnUntraced(function*(event: OrderEventEnvelope) {
      // Every append of an order reaches the processor before its processing request: knowing them, it decides
      // on the request without reading the stream back from the store.
      yield* store.learn([event])
      if (event.data._tag !== "OrderProcessingRequested") return
      const orderId = event.data.orderId
      yield* Effect.sleep(options.delay).pipe(traced("Processor.work"))
      const command = (yield* Random.next) < options.failureRate
        ? FailProcessing.make({ orderId, reason: mockFailure })
        : CompleteProcessing.make({ orderId })
      // The store is read at least up to the request (else StaleRead, and the request comes again): a refusal
      // then means that the request's outcome is already recorded.
      yield* commands.handleCausedBy(command, event).pipe(
        Effect.tap(({ order }) => Effect.logInfo(`order ${orderId} ${order.status}`)),
        Effect.catchTags({
          InvalidOrderTransition: (error) => Effect.logDebug("processing request already handled", error.message),
          OrderNotFound: (error) => Effect.die(error)
        })
      )
    }, traced("Processor.process"))
  })

/** The processor, consuming for as long as the layer lives. */
export const ProcessorLive = Layer.scopedDiscard(Effect.gen(function*() {
  const bus = yield* EventBus
  const workers = yield* Workers
  const group = yield* ProcessorGroup
  const subscription = yield* bus.subscribe(group, yield* makeProcessor(yield* ProcessorConfig))
  yield* requireMembership(group, subscription)
  yield* workers.run(`processor (group ${group})`, subscription.stopped)
  yield* Effect.logInfo(`processor consuming as group ${group}`)
})).pipe(Layer.provide(CommandHandler.Default))
