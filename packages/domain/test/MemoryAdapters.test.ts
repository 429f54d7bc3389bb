import * as EventBus from "../src/EventBus.js"
import * as EventStore from "../src/EventStore.js"
import * as OrderReadModel from "../src/OrderReadModel.js"
import { eventBusContract, fastDeliveryPolicy } from "./contract/EventBusContract.js"
import { eventStoreContract } from "./contract/EventStoreContract.js"
import { orderReadModelContract } from "./contract/OrderReadModelContract.js"

eventStoreContract("in memory", EventStore.layerMemory)
eventBusContract("in memory", EventBus.layerMemoryWith(fastDeliveryPolicy), fastDeliveryPolicy)
orderReadModelContract("in memory", OrderReadModel.layerMemory)
