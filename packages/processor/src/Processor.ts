/**
 * The order processor: takes processing requests from the bus, mocks the work,
 * and records the outcome through the same command handler as the API.
 */
import { CommandHandler } from "@orders/domain/CommandHandler"
import { EventBus } from "@orders/domain/EventBus"
import { CompleteProcessing, FailProcessing } from "@orders/domain/OrderCommand"
import type { OrderEventEnvelope } from "@orders/domain/OrderEvent"
import { EventMetadata } from "@orders/domain/OrderEvent"
import { Config, Duration, Effect, Layer, Random } from "effect"

export const ProcessorGroup = "processor"

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

export const makeProcessor = (options: ProcessorOptions) =>
  Effect.gen(function*() {
    const commands = yield* CommandHandler
    return Effect.fn("Processor.process")(function*(event: OrderEventEnvelope) {
      if (event.data._tag !== "OrderProcessingRequested") return
      const orderId = event.data.orderId
      yield* Effect.sleep(options.delay)
      const command = (yield* Random.next) < options.failureRate
        ? FailProcessing.make({ orderId, reason: "mock processing failed" })
        : CompleteProcessing.make({ orderId })
      const metadata = EventMetadata.make({ correlationId: event.metadata.correlationId, causationId: event.eventId })
      yield* commands.handle(command, metadata).pipe(
        // Another writer got in first: decide again on the fresh state.
        Effect.retry({ while: (error) => error._tag === "ConcurrencyConflict", times: 5 }),
        Effect.tap(({ order }) => Effect.logInfo(`order ${orderId} ${order.status}`)),
        // A redelivered request whose outcome is already recorded: nothing left to do.
        Effect.catchTags({
          InvalidOrderTransition: (error) => Effect.logDebug("processing request already handled", error.message),
          OrderNotFound: (error) => Effect.logWarning("processing requested for an unknown order", error.message),
          OrderAlreadyExists: (error) => Effect.die(error)
        })
      )
    })
  })

/** The processor, consuming for as long as the layer lives. */
export const ProcessorLive = Layer.scopedDiscard(Effect.gen(function*() {
  const bus = yield* EventBus
  const process = yield* makeProcessor(yield* ProcessorConfig)
  yield* bus.subscribe(ProcessorGroup, process)
  yield* Effect.logInfo(`processor consuming as group ${ProcessorGroup}`)
})).pipe(Layer.provide(CommandHandler.Default))
