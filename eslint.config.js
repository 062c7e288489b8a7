// Type-checked typescript-eslint rules over the whole project.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.stowage/**', 'bin/**', 'scripts/*.mjs', 'eslint.config.js'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-extraneous-class': 'off',
      // Handlers implement async interfaces; many return without awaiting, which is fine.
      '@typescript-eslint/require-await': 'off',
      // Number() on values from SQL is a deliberate guard: drivers differ on bigint/numeric types.
      '@typescript-eslint/no-unnecessary-type-conversion': 'off',
    },
  },
);
