import { defineConfig } from 'vite';

// The build lands in the Go package that embeds it (gateway/console),
// served under /ui/ by the gateway and steward dev. No module preload
// polyfill: it would be an inline script, which the console's
// Content-Security-Policy refuses.
export default defineConfig({
  base: '/ui/',
  build: {
    outDir: '../gateway/console/dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: {
    // src/api.ts reads event streams with the TypeScript client's parser.
    fs: { allow: ['.', '../clients/typescript/src'] },
    proxy: {
      '/v1': 'http://127.0.0.1:8080',
      '/gateway': 'http://127.0.0.1:8080',
      '/metrics': 'http://127.0.0.1:8080',
    },
  },
});
