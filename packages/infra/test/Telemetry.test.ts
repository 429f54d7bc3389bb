import { describe, expect, it } from "@effect/vitest"
import { TraceContextPropagation } from "@orders/domain/EventBus"
import { annotateSpan } from "@orders/domain/Tracing"
import { ConfigProvider, Effect, Exit, HashMap, Logger, Metric, MetricBoundaries } from "effect"
import { prometheusText, traceExportConfig, tracing, withTraceIds } from "../src/Telemetry.js"
import { otlpReceiver } from "./support/otlpReceiver.js"

const exportWith = (variables: Record<string, string>) =>
  Effect.withConfigProvider(
    traceExportConfig("orders-test"),
    ConfigProvider.fromMap(new Map(Object.entries(variables)))
  )

describe("Telemetry", () => {
  describe("traces are exported as the standard OTEL_* variables say", () => {
    const cases: ReadonlyArray<readonly [string, Record<string, string>, unknown]> = [
      ["nowhere when none is set", {}, { _tag: "None" }],
      [
        "over OTLP/HTTP with protobuf, to the endpoint's /v1/traces, once an endpoint is set",
        { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" },
        { _tag: "Otlp", serviceName: "orders-test", url: "http://collector:4318/v1/traces", protocol: "http/protobuf" }
      ],
      [
        "to the traces endpoint as given, with JSON when asked, under OTEL_SERVICE_NAME",
        {
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/custom",
          OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
          OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
          OTEL_SERVICE_NAME: "orders-eu"
        },
        { _tag: "Otlp", serviceName: "orders-eu", url: "http://collector:4318/custom", protocol: "http/json" }
      ],
      [
        "to the SDKs' default endpoint when only the exporter is named",
        { OTEL_TRACES_EXPORTER: "otlp" },
        { _tag: "Otlp", serviceName: "orders-test", url: "http://localhost:4318/v1/traces", protocol: "http/protobuf" }
      ],
      ["to the console when asked", { OTEL_TRACES_EXPORTER: "console" }, {
        _tag: "Console",
        serviceName: "orders-test"
      }],
      ["nowhere when the exporter is none", { OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c" }, {
        _tag: "None"
      }],
      ["nowhere when the SDK is disabled", { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c" }, {
        _tag: "None"
      }]
    ]
    for (const [what, variables, expected] of cases) {
      it.effect(what, () => Effect.map(exportWith(variables), (traceExport) => expect(traceExport).toEqual(expected)))
    }

    it.effect("and refuses what it cannot do, rather than ignore it", () =>
      Effect.gen(function*() {
        const refused = yield* Effect.flip(
          exportWith({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })
        )
        expect(String(refused)).toContain("OTEL_EXPORTER_OTLP_PROTOCOL")
        expect(String(yield* Effect.flip(exportWith({ OTEL_TRACES_EXPORTER: "zipkin" })))).toContain(
          "OTEL_TRACES_EXPORTER"
        )
      }))
  })

  it.effect("without an exporter, spans cost nothing: no ids, and no trace context on events", () =>
    Effect.gen(function*() {
      const span = yield* Effect.currentSpan.pipe(Effect.withSpan("work"))
      expect(span.traceId).toBe("noop")
      expect(yield* TraceContextPropagation).toBe(false)
    }).pipe(Effect.provide(tracing({ _tag: "None" }))))

  it.live("with an exporter, sends the spans over OTLP, as the program's service, when the program stops", () =>
    Effect.gen(function*() {
      const receiver = yield* otlpReceiver
      const traced = yield* Effect.gen(function*() {
        expect(yield* TraceContextPropagation).toBe(true)
        return yield* Effect.currentSpan.pipe(Effect.withSpan("child"), Effect.withSpan("parent"))
      }).pipe(
        Effect.provide(
          tracing({
            _tag: "Otlp",
            serviceName: "orders-test",
            url: `${receiver.endpoint}/v1/traces`,
            protocol: "http/json"
          })
        )
      )
      const spans = receiver.spans().filter((span) => span.traceId === traced.traceId)
      expect(spans.map((span) => [span.service, span.name]).sort()).toEqual([
        ["orders-test", "child"],
        ["orders-test", "parent"]
      ])
    }).pipe(Effect.scoped))

  it.effect("annotates the current span, and does nothing (not even fail) outside one", () =>
    Effect.gen(function*() {
      const span = yield* Effect.makeSpan("annotated")
      yield* annotateSpan({ "http.route": "/:id", count: 2 }).pipe(Effect.withParentSpan(span))
      expect(Object.fromEntries(span.attributes)).toEqual({ "http.route": "/:id", count: 2 })
      expect(yield* Effect.exit(annotateSpan({ ignored: true }))).toEqual(Exit.void)
    }))

  it.effect("renders Effect's metrics in the Prometheus text format", () =>
    Effect.gen(function*() {
      const counter = Metric.counter("telemetry_test_events_total", { description: "Events seen", incremental: true })
      const histogram = Metric.histogram(
        "telemetry_test_seconds",
        MetricBoundaries.fromIterable([0.1, 1]),
        "Time taken"
      )
      yield* Metric.incrementBy(Metric.tagged(counter, "kind", "a"), 2)
      yield* Metric.update(histogram, 0.5)
      const text = yield* prometheusText
      expect(text).toContain("# HELP telemetry_test_events_total Events seen")
      expect(text).toContain("# TYPE telemetry_test_events_total counter")
      expect(text).toContain("telemetry_test_events_total{kind=\"a\"} 2")
      expect(text).toContain("# TYPE telemetry_test_seconds histogram")
      expect(text).toContain("telemetry_test_seconds_bucket{le=\"0.1\"} 0")
      expect(text).toContain("telemetry_test_seconds_bucket{le=\"1\"} 1")
      expect(text).toContain("telemetry_test_seconds_bucket{le=\"+Inf\"} 1")
      expect(text).toContain("telemetry_test_seconds_count 1")
    }))

  it.effect("tells the process's memory, read at the scrape, under prom-client's names", () =>
    Effect.gen(function*() {
      const valueOf = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1])
      const text = yield* prometheusText
      const rss = valueOf(text, "process_resident_memory_bytes")
      const heapTotal = valueOf(text, "nodejs_heap_size_total_bytes")
      const heapUsed = valueOf(text, "nodejs_heap_size_used_bytes")
      // Within a factor of two of what the process says after the scrape: neither a stale nor a made-up figure.
      expect(rss).toBeGreaterThan(process.memoryUsage().rss / 2)
      expect(rss).toBeLessThan(process.memoryUsage().rss * 2)
      expect(heapUsed).toBeGreaterThan(0)
      expect(heapUsed).toBeLessThanOrEqual(heapTotal)
      expect(heapTotal).toBeLessThan(rss)
      expect(valueOf(text, "nodejs_external_memory_bytes")).toBeGreaterThan(0)
    }))

  it.effect("puts the trace and span ids on the log records written inside a span", () =>
    Effect.gen(function*() {
      const records: Array<Record<string, unknown>> = []
      const capture = withTraceIds(
        Logger.make(({ annotations }) => records.push(Object.fromEntries(HashMap.toEntries(annotations))))
      )
      const span = yield* Effect.gen(function*() {
        yield* Effect.log("inside")
        return yield* Effect.currentSpan
      }).pipe(Effect.withSpan("work"), Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      yield* Effect.log("outside").pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      expect(records).toEqual([{ traceId: span.traceId, spanId: span.spanId }, {}])
    }))
})
