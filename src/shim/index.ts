/** @module shim: qemu-warden as a containerd shim v2 runtime (io.containerd.warden.v1): bundle → VM, Task API → lifecycle, ttrpc from containerd's own protos. */
export { parseShimArgs, type ShimArgs, type ShimAction } from './args.js';
export { ShimError, type ShimErrorCode } from './errors.js';
export { shimPaths, vmNameFor, type ShimPaths } from './names.js';
export { deriveVm, specSource, inRootfs, SPEC_ANNOTATION, ROOTFS_SPEC, type OciConfig, type DerivedVm } from './bundle.js';
export { FrameReader, encodeFrame, MSG_REQUEST, MSG_RESPONSE, MAX_MESSAGE } from './framing.js';
export { loadProtos, type Protos } from './protos.js';
export { POD_BRIDGE } from './netns.js';
