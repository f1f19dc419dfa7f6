// ESLint for the page's modules (static/js/) and the e2e suite's own scripts: `npm run lint`.
// A cheap net for mistakes (undefined names, unused variables, unreachable code), not a style guide.
// `npm run lint` runs ESLint from the repository root with this file as its config, so the
// patterns below are relative to the root (ESLint ignores files outside its base path).
import js from '@eslint/js';
import globals from 'globals';

export default [
  {
    files: ['static/js/**/*.js'],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: globals.browser,
    },
  },
  {
    files: ['e2e/**/*.mjs', 'e2e/eslint.config.js'],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: 'module',
      globals: globals.node,
    },
  },
  {
    // Functions passed to page.evaluate() run in the browser.
    files: ['e2e/tests/**/*.mjs'],
    languageOptions: {
      globals: { window: 'readonly', document: 'readonly' },
    },
  },
  {
    files: ['static/js/**/*.js', 'e2e/**/*.mjs', 'e2e/eslint.config.js'],
    rules: {
      'no-unused-vars': ['error', { args: 'after-used', caughtErrors: 'none' }],
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-implicit-globals': 'error',
    },
  },
];
