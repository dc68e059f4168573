/** @module api: wardend's REST/JSON API under /v1 on a unix socket (server, app, routes, OpenAPI), and its typed client. */
export { startDaemon, runDaemon, defaultSocket, DEFAULT_SOCKET, API_VERSION, type DaemonOptions, type RunningDaemon } from './server.js';
export { buildApp, BODY_LIMIT, type App, type AppOptions } from './app.js';
export { ROUTES, type RouteDef } from './routes.js';
export { openApiDocument } from './openapi.js';
export { ApiClient, type ApiRoot, type VmListItem, type ApiResponse } from './client.js';
export { RemoteService } from './remote.js';
export { ApiError, errorResponse, type ApiErrorCode, type ErrorBody } from './errors.js';
export { callerOf, authorize, canSee, ADMIN_GROUP, USER_GROUP, type Caller, type Permission } from './auth.js';
export { ACTIONS, type StateAction } from './schemas.js';
export { ConsoleHub, TICKET_TTL_MS, BACKLOG_BYTES } from './console.js';
export { checkCallerFiles, checkCallerSpec } from './access.js';
