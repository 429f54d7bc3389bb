/**
 * What the programs tell about their work: traces exported over OTLP when the
 * standard `OTEL_*` variables ask for them (and no tracer at all otherwise),
 * Effect's metrics in the Prometheus text format, and the trace and span ids
 * on every log record written inside a span.
 */
import { Metrics, NodeSdk, Resource } from "@effect/opentelemetry"
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { OTLPTraceExporter as OtlpJsonExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { OTLPTraceExporter as OtlpProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto"
import type { SpanExporter } from "@opentelemetry/sdk-trace-base"
import { BatchSpanProcessor, ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base"
import { formatTraceparent, TraceContextPropagation } from "@orders/domain/EventBus"
import type { ConfigError } from "effect"
import { Config, Context, Effect, FiberRef, FiberRefs, HashMap, Layer, Logger, Metric, Option, Tracer } from "effect"

/** OTLP over HTTP, with protobuf (the specification's default) or JSON bodies. */
export type OtlpProtocol = "http/protobuf" | "http/json"

/** Where spans go: an OTLP/HTTP endpoint, the console (for a look while developing), or nowhere. */
export type TraceExport =
  | { readonly _tag: "None" }
  | { readonly _tag: "Console"; readonly serviceName: string }
  | {
    readonly _tag: "Otlp"
    readonly serviceName: string
    readonly url: string
    readonly protocol: OtlpProtocol
  }

/** The SDKs' default endpoint, for `OTEL_TRACES_EXPORTER=otlp` without an endpoint. */
const defaultOtlpEndpoint = "http://localhost:4318"

const optionalString = (name: string) => Config.option(Config.string(name))

const protocolConfig = (name: string) => Config.literal("http/protobuf", "http/json")(name)

/**
 * The standard variables, as every OpenTelemetry SDK reads them:
 * `OTEL_SDK_DISABLED=true` turns everything off; `OTEL_TRACES_EXPORTER` is
 * `otlp`, `console` or `none` (default `otlp` when an endpoint is set, else
 * `none`); `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is the full URL of the traces
 * endpoint, or `OTEL_EXPORTER_OTLP_ENDPOINT` its base (`/v1/traces` is
 * appended); `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
 * `OTEL_EXPORTER_OTLP_PROTOCOL` is `http/protobuf` (default) or `http/json`
 * (gRPC is refused rather than ignored); `OTEL_SERVICE_NAME` names the program
 * (default `serviceName`).
 */
export const traceExportConfig = (serviceName: string): Config.Config<TraceExport> =>
  Config.all({
    disabled: Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
    exporter: Config.option(
      Config.literal("otlp", "console", "none")("OTEL_TRACES_EXPORTER")
    ),
    tracesEndpoint: optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    endpoint: optionalString("OTEL_EXPORTER_OTLP_ENDPOINT"),
    tracesProtocol: Config.option(protocolConfig("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")),
    protocol: protocolConfig("OTEL_EXPORTER_OTLP_PROTOCOL").pipe(Config.withDefault("http/protobuf" as const)),
    serviceName: Config.string("OTEL_SERVICE_NAME").pipe(Config.withDefault(serviceName))
  }).pipe(Config.map(({ disabled, endpoint, exporter, protocol, serviceName, tracesEndpoint, tracesProtocol }) => {
    const url = Option.orElse(
      tracesEndpoint,
      () => Option.map(endpoint, (base) => `${base.replace(/\/+$/, "")}/v1/traces`)
    )
    const chosen = Option.getOrElse(exporter, () => Option.isSome(url) ? "otlp" as const : "none" as const)
    if (disabled || chosen === "none") return { _tag: "None" } satisfies TraceExport
    if (chosen === "console") return { _tag: "Console", serviceName } satisfies TraceExport
    return {
      _tag: "Otlp",
      serviceName,
      url: Option.getOrElse(url, () => `${defaultOtlpEndpoint}/v1/traces`),
      protocol: Option.getOrElse(tracesProtocol, () => protocol)
    } satisfies TraceExport
  }))

const exporterOf = (traceExport: Exclude<TraceExport, { _tag: "None" }>): SpanExporter => {
  if (traceExport._tag === "Console") return new ConsoleSpanExporter()
  const options = { url: traceExport.url }
  return traceExport.protocol === "http/json" ? new OtlpJsonExporter(options) : new OtlpProtobufExporter(options)
}

/**
 * Tracing as `traceExport` says. On: an OpenTelemetry tracer whose spans are
 * batched to the exporter (flushed when the program stops), and events and
 * messages carry the trace context. Off: Effect's tracer is disabled, so spans
 * cost nothing and carry no ids.
 */
export const tracing = (traceExport: TraceExport): Layer.Layer<never> =>
  traceExport._tag === "None"
    ? Layer.setTracerEnabled(false)
    : Layer.merge(
      NodeSdk.layer(() => ({
        resource: { serviceName: traceExport.serviceName },
        spanProcessor: new BatchSpanProcessor(exporterOf(traceExport))
      })),
      Layer.succeed(TraceContextPropagation, true)
    )

/** Tracing configured by the standard variables (see `traceExportConfig`), for the program `serviceName`. */
export const tracingConfig = (serviceName: string): Layer.Layer<never, ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(traceExportConfig(serviceName), tracing))

// No `target_info` nor scope labels: Prometheus adds the target's own labels when it scrapes.
const serializer = new PrometheusSerializer(undefined, false, undefined, true, true)

// The names and meanings of prom-client's default metrics, which dashboards already know.
const residentMemory = Metric.gauge("process_resident_memory_bytes", { description: "Resident memory size in bytes." })
const heapTotal = Metric.gauge("nodejs_heap_size_total_bytes", {
  description: "Process heap size from Node.js in bytes."
})
const heapUsed = Metric.gauge("nodejs_heap_size_used_bytes", {
  description: "Process heap size used from Node.js in bytes."
})
const externalMemory = Metric.gauge("nodejs_external_memory_bytes", {
  description: "Node.js external memory size in bytes."
})

/** The process's memory, read when it is scraped. */
const sampleMemory = Effect.suspend(() => {
  const usage = process.memoryUsage()
  return Effect.all([
    Metric.set(residentMemory, usage.rss),
    Metric.set(heapTotal, usage.heapTotal),
    Metric.set(heapUsed, usage.heapUsed),
    Metric.set(externalMemory, usage.external)
  ], { discard: true })
})

/** Every metric of the process (Effect's global registry), its memory among them, in the Prometheus text format. */
export const prometheusText: Effect.Effect<string> = sampleMemory.pipe(
  Effect.zipRight(Metrics.makeProducer),
  Effect.flatMap((producer) => Effect.promise(() => producer.collect())),
  Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics)),
  Effect.provide(Resource.layerEmpty)
)

/** The content type of `prometheusText`. */
export const prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

/** `logger`, with the trace and span ids of the span a record was written in, when the tracer gives W3C ids. */
export const withTraceIds = <Message, Output>(logger: Logger.Logger<Message, Output>): Logger.Logger<Message, Output> =>
  Logger.mapInputOptions(logger, (options) => {
    const span = Context.getOption(FiberRefs.getOrDefault(options.context, FiberRef.currentContext), Tracer.ParentSpan)
    if (Option.isNone(span) || formatTraceparent(span.value) === undefined) return options
    return {
      ...options,
      annotations: options.annotations.pipe(
        HashMap.set("traceId", span.value.traceId as unknown),
        HashMap.set("spanId", span.value.spanId as unknown)
      )
    }
  })
