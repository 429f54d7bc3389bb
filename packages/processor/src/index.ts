export * from "./Processor.js"
