/**
 * @since 0.1.0
 */
export * as CommandHandler from "./CommandHandler.js"
export * as EventBus from "./EventBus.js"
export * as EventStore from "./EventStore.js"
export * as Order from "./Order.js"
export * as OrderCommand from "./OrderCommand.js"
export * as OrderDecider from "./OrderDecider.js"
export * as OrderError from "./OrderError.js"
export * as OrderEvent from "./OrderEvent.js"
export * as OrderReadModel from "./OrderReadModel.js"
export * as Projection from "./Projection.js"
export * as Trusted from "./Trusted.js"
