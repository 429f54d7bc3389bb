/** The order processor, against MongoDB and Kafka (`pnpm start:processor`). */
import * as EventBusKafka from "@orders/infra/EventBusKafka"
import * as EventStoreMongo from "@orders/infra/EventStoreMongo"
import { runProgram } from "@orders/infra/Program"
import { Layer } from "effect"
import { ProcessorLive } from "../Processor.js"

runProgram(ProcessorLive.pipe(Layer.provide(Layer.mergeAll(EventStoreMongo.layerConfig, EventBusKafka.layerConfig))))
