/** The part of noVNC's RFB class the display tab uses (noVNC ships no types). */
declare module '@novnc/novnc' {
  export default class RFB extends EventTarget {
    constructor(target: HTMLElement, urlOrChannel: string | WebSocket, options?: { shared?: boolean; credentials?: { password?: string } });
    scaleViewport: boolean;
    viewOnly: boolean;
    disconnect(): void;
    sendCtrlAltDel(): void;
  }
}
