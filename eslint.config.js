import * as effectEslint from "@effect/eslint-plugin"
import eslint from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["**/node_modules", "**/dist", "deploy/native/.state"] },
  eslint.configs.recommended,
  tseslint.configs.recommended,
  ...effectEslint.configs.dprint,
  {
    // The console's browser modules (packages/server/src/Console.ts serves them): the browser's names they use.
    files: ["packages/server/console/**/*.js"],
    languageOptions: {
      globals: Object.fromEntries(
        [
          "AbortSignal",
          "FormData",
          "URLSearchParams",
          "addEventListener",
          "document",
          "fetch",
          "history",
          "location",
          "performance",
          "sessionStorage",
          "setTimeout"
        ].map((name) => [name, "readonly"])
      )
    }
  },
  {
    rules: {
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "separate-type-imports" }],
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-empty-object-type": "off",
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }]
    }
  }
)
