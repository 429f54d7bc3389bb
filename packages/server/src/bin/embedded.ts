import { runProgram } from "@orders/infra/Program"
import { Layer } from "effect"
import { EmbeddedWorkersLive, MemoryAdaptersLive } from "../Embedded.js"
import { HttpLive } from "../Http.js"

runProgram("orders", Layer.mergeAll(HttpLive, EmbeddedWorkersLive).pipe(Layer.provide(MemoryAdaptersLive)))
