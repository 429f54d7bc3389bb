/** The order processor, against MongoDB and Kafka (`pnpm start:processor`), with its metrics and health listener. */
import * as EventBusKafka from "@orders/infra/EventBusKafka"
import * as EventStoreMongo from "@orders/infra/EventStoreMongo"
import { requireEventStore } from "@orders/infra/Health"
import { OpsServerLive } from "@orders/infra/OpsEndpoints"
import { runProgram } from "@orders/infra/Program"
import { Layer } from "effect"
import { ProcessorLive } from "../Processor.js"

runProgram(
  "orders-processor",
  Layer.mergeAll(ProcessorLive, requireEventStore, OpsServerLive).pipe(
    Layer.provide(Layer.mergeAll(EventStoreMongo.layerConfig, EventBusKafka.layerConfig))
  )
)
