/**
 * The fault suite's own native stack: deploy/native's scripts with other
 * loopback ports and another state directory, so that the servers this suite
 * kills, freezes and stops are never the shared stack's (the integration
 * tests and other people use that one at the same time). Every signal goes to
 * a pid read from this stack's state directory, and only after checking that
 * the process's command line names that directory.
 */
import { Duration, Effect, Schedule } from "effect"
import { execFile } from "node:child_process"
import { readFileSync, realpathSync } from "node:fs"
import { fileURLToPath } from "node:url"

export const root = fileURLToPath(new URL("../../../../", import.meta.url))
export const stateDir = `${root}deploy/native/.state-faults`

const ports = { postgres: 15432, ferretdbPostgres: 15433, kafka: 19092, kafkaController: 19093, mongo: 37017 } as const

/** The addresses of this stack, as `@orders/infra/testing/stack` and the programs read them. */
export const clientEnv = {
  MONGODB_URI: `mongodb://127.0.0.1:${ports.mongo}/orders`,
  DATABASE_URL: `postgres://orders:orders@127.0.0.1:${ports.postgres}/orders`,
  KAFKA_BROKERS: `127.0.0.1:${ports.kafka}`
} as const

const scriptEnv = {
  ORDERS_NATIVE_STATE: stateDir,
  ORDERS_PG_PORT: String(ports.postgres),
  ORDERS_FERRETDB_PG_PORT: String(ports.ferretdbPostgres),
  ORDERS_KAFKA_PORT: String(ports.kafka),
  ORDERS_KAFKA_CONTROLLER_PORT: String(ports.kafkaController),
  ORDERS_MONGO_PORT: String(ports.mongo)
}

const script = (name: "up.sh" | "down.sh") =>
  Effect.async<void, Error>((resume) => {
    const child = execFile(
      `${root}deploy/native/${name}`,
      [],
      { env: { ...process.env, ...scriptEnv }, timeout: 300_000 },
      (error, _stdout, stderr) => resume(error === null ? Effect.void : Effect.fail(new Error(`${name}: ${stderr}`)))
    )
    return Effect.sync(() => child.kill())
  })

/** Starts whatever of the private stack is down (up.sh is idempotent): also how a stopped service comes back. */
export const up = script("up.sh")

/** Stops the private stack (by its pid files). */
export const down = script("down.sh")

export type Service = "kafka" | "ferretdb" | "postgres"

const pidFile = (service: Service) =>
  service === "postgres" ? `${stateDir}/postgres/data/postmaster.pid` : `${stateDir}/run/${service}.pid`

/** The pid of one of this stack's services; fails unless that process runs out of this stack's state directory. */
const pidOf = (service: Service) =>
  Effect.try(() => {
    const pid = Number(readFileSync(pidFile(service), "utf8").split("\n")[0])
    const commandLine = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ")
    // The PostgreSQL cluster may sit behind a symlink (see up.sh): its command line names the resolved path.
    const home = service === "postgres" ? realpathSync(`${stateDir}/postgres`) : stateDir
    if (!commandLine.includes(home)) throw new Error(`pid ${pid} is not this stack's ${service}: ${commandLine}`)
    return pid
  })

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Sends `signal` to one of this stack's services. */
export const signal = (service: Service, name: NodeJS.Signals) =>
  Effect.flatMap(pidOf(service), (pid) => Effect.sync(() => process.kill(pid, name)))

/** SIGKILL, SIGTERM or SIGINT (PostgreSQL's fast shutdown), then waits (at most a minute) for the process to be gone. */
export const stop = (service: Service, name: "SIGKILL" | "SIGTERM" | "SIGINT") =>
  Effect.gen(function*() {
    const pid = yield* pidOf(service)
    process.kill(pid, name)
    yield* Effect.sync(() => isAlive(pid)).pipe(
      Effect.repeat({ while: (alive) => alive, schedule: Schedule.spaced(Duration.millis(100)) }),
      Effect.timeoutFail({ duration: Duration.minutes(1), onTimeout: () => new Error(`${service} did not exit`) })
    )
  })
