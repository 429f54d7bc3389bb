import { defineConfig } from "vitest/config"
import { clientEnv } from "./packages/server/test/faults/PrivateStack.js"

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts"],
          exclude: ["packages/*/test/**/*.integration.test.ts", "packages/*/test/**/*.faults.test.ts"]
        }
      },
      {
        test: {
          name: "integration",
          include: ["packages/*/test/**/*.integration.test.ts"],
          globalSetup: ["packages/infra/test/support/requireStack.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000
        }
      },
      {
        test: {
          name: "faults",
          include: ["packages/*/test/**/*.faults.test.ts"],
          // The suite's own stack, never the shared one: it kills, freezes and stops its servers.
          globalSetup: ["packages/server/test/faults/globalSetup.ts"],
          env: clientEnv,
          testTimeout: 300_000,
          hookTimeout: 300_000
        }
      }
    ]
  }
})
