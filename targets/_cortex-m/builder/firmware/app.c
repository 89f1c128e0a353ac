/* The TinyMLaaS MCU firmware: boot, print the ready banner, then serve the
 * framed UART protocol (proto.h) around the AOT inference module (model.h). */
#include <stddef.h>
#include <stdint.h>

#include "cortex_m.h"
#include "icount.h"
#include "model_api.h"
#include "proto.h"
#include "uart.h"

#ifndef TINYMLAAS_MODEL_UPDATE
#define TINYMLAAS_MODEL_UPDATE 0
#endif

#define INFO_MAX 512u
#define MAX2(a, b) ((a) > (b) ? (a) : (b))
#define HEADER 4u
#define TRAILER 2u
/* Largest request payload: an input tensor, or a model-write chunk. */
#define RX_PAYLOAD MAX2(MODEL_INPUT_BYTES, 4u + 256u)
#define TX_PAYLOAD MAX2(4u + MODEL_OUTPUT_BYTES, INFO_MAX)
/* COBS adds one byte per 254 plus one. */
#define RX_WIRE (HEADER + RX_PAYLOAD + TRAILER + (HEADER + RX_PAYLOAD + TRAILER) / 254u + 2u)

extern uint8_t _smodel, _emodel;

/* Where each of the model's tensors lies in the packed INFER payloads (model_api.h's
 * MODEL_TENSOR_TABLE: every input, then every output), for the TENSOR command. */
typedef struct {
    uint8_t dtype, rank;
    uint32_t bytes, offset;
    int32_t dims[MODEL_TENSOR_MAX_RANK];
} tensor_desc;
static const tensor_desc tensors[] = {MODEL_TENSOR_TABLE};
#define N_TENSORS (sizeof tensors / sizeof tensors[0])
/* The table and the module agree on the packed sizes (checked when compiling). */
typedef char packed_inputs_check[MODEL_TENSOR_INPUT_BYTES == MODEL_INPUT_BYTES ? 1 : -1];
typedef char packed_outputs_check[MODEL_TENSOR_OUTPUT_BYTES == MODEL_OUTPUT_BYTES ? 1 : -1];

/* Word-aligned: the model reads its input at rx + HEADER and writes its output at
 * tx + HEADER + 4, and a float or int16 tensor is accessed by words (Cortex-M0 faults on
 * an unaligned word). */
static uint8_t rx[RX_WIRE] __attribute__((aligned(4)));
static uint8_t tx[HEADER + TX_PAYLOAD + TRAILER] __attribute__((aligned(4)));
static uint8_t ring[256];
static volatile uint8_t ring_head, ring_tail;
static volatile uint32_t ring_dropped;

void rx_push(uint8_t c) {
    uint8_t next = (uint8_t)(ring_head + 1u);
    if (next == ring_tail) {
        ring_dropped++; /* the frame will fail its CRC and get an error reply */
        return;
    }
    ring[ring_head] = c;
    ring_head = next;
}

static uint8_t rx_pop(void) {
    for (;;) {
        irq_disable();
        if (ring_head != ring_tail) {
            uint8_t c = ring[ring_tail];
            ring_tail = (uint8_t)(ring_tail + 1u);
            irq_enable();
            return c;
        }
        wait_for_interrupt(); /* wakes on a pending interrupt even while masked */
        irq_enable();
    }
}

/* ---- text output (banner and INFO) without printf ---- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} text;

static void t_str(text *t, const char *s) {
    while (*s && t->len < t->cap) {
        t->buf[t->len++] = (uint8_t)*s++;
    }
}

static void t_udec(text *t, uint32_t v) {
    char digits[11];
    int i = 0;
    do {
        digits[i++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (i && t->len < t->cap) {
        t->buf[t->len++] = (uint8_t)digits[--i];
    }
}

static void t_dec(text *t, int32_t v) {
    if (v < 0) {
        t_str(t, "-");
        t_udec(t, (uint32_t)(-(v + 1)) + 1u);
    } else {
        t_udec(t, (uint32_t)v);
    }
}

static void t_hex(text *t, uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    t_str(t, "0x");
    for (int i = 28; i >= 0 && t->len < t->cap; i -= 4) {
        t->buf[t->len++] = (uint8_t)digits[(v >> i) & 0xFu];
    }
}

static uint32_t float_bits(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    return v.u;
}

/* The running model's hash, read from the model region: after a model-only
 * update it names the new model, which MODEL_SHA256 (compiled in) cannot. */
static void t_model_sha(text *t) {
    static const char hex[] = "0123456789abcdef";
    const uint8_t *sha = model_model_sha256();
    char s[2] = {0, 0};
    for (size_t i = 0; i < 32u; i++) {
        s[0] = hex[sha[i] >> 4];
        t_str(t, s);
        s[0] = hex[sha[i] & 15u];
        t_str(t, s);
    }
}

static void t_kv_str(text *t, const char *k, const char *v) {
    t_str(t, k);
    t_str(t, "=");
    t_str(t, v);
    t_str(t, "\n");
}

static void t_kv_dec(text *t, const char *k, int32_t v) {
    t_str(t, k);
    t_str(t, "=");
    t_dec(t, v);
    t_str(t, "\n");
}

static void t_kv_hex(text *t, const char *k, uint32_t v) {
    t_str(t, k);
    t_str(t, "=");
    t_hex(t, v);
    t_str(t, "\n");
}

/* ---- frames ---- */

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void send(uint8_t cmd, uint8_t seq, size_t len) {
    tx[0] = cmd;
    tx[1] = seq;
    tx[2] = (uint8_t)len;
    tx[3] = (uint8_t)(len >> 8);
    uint16_t crc = crc16_ccitt(0xFFFFu, tx, HEADER + len);
    tx[HEADER + len] = (uint8_t)crc;
    tx[HEADER + len + 1u] = (uint8_t)(crc >> 8);
    cobs_send(tx, HEADER + len + TRAILER);
}

static void send_error(uint8_t seq, uint8_t code, const char *why) {
    text t = {tx + HEADER + 1u, 0, TX_PAYLOAD - 1u};
    tx[HEADER] = code;
    t_str(&t, why);
    send(CMD_ERROR, seq, 1u + t.len);
}

static void do_info(uint8_t seq) {
    text t = {tx + HEADER, 0, TX_PAYLOAD};
    t_kv_dec(&t, "proto", PROTO_VERSION);
    t_kv_str(&t, "board", BOARD_NAME);
    t_kv_str(&t, "fw", FW_VERSION);
    t_str(&t, "model=");
    t_model_sha(&t);
    t_str(&t, "\n");
    t_kv_dec(&t, "inputs", MODEL_TENSOR_INPUTS);
    t_kv_dec(&t, "outputs", (int32_t)N_TENSORS - MODEL_TENSOR_INPUTS);
    t_kv_dec(&t, "input_bytes", MODEL_INPUT_BYTES);
    t_kv_dec(&t, "output_bytes", MODEL_OUTPUT_BYTES);
    t_kv_hex(&t, "input_scale_bits", float_bits(model_input_scale()));
    t_kv_dec(&t, "input_zero_point", model_input_zero_point());
    t_kv_hex(&t, "output_scale_bits", float_bits(model_output_scale()));
    t_kv_dec(&t, "output_zero_point", model_output_zero_point());
    t_kv_dec(&t, "arena_bytes", MODEL_ARENA_BYTES);
    t_kv_hex(&t, "model_region", (uint32_t)(uintptr_t)&_smodel);
    t_kv_dec(&t, "model_region_bytes", (int32_t)(&_emodel - &_smodel));
    t_kv_dec(&t, "model_update", TINYMLAAS_MODEL_UPDATE);
    const icount_calibration *c = icount_calibration_get();
    t_kv_dec(&t, "icount_loop_instructions", (int32_t)c->loop_instructions);
    t_kv_dec(&t, "icount_loop_ticks", (int32_t)c->loop_ticks);
    t_kv_dec(&t, "icount_call_ticks", (int32_t)c->call_ticks);
    t_kv_dec(&t, "rx_dropped", (int32_t)ring_dropped);
    send(CMD_INFO | CMD_REPLY, seq, t.len);
}

static void do_infer(uint8_t seq, const uint8_t *payload, size_t len) {
    if (len != MODEL_INPUT_BYTES) {
        send_error(seq, ERR_BAD_LENGTH, "input size differs from MODEL_INPUT_BYTES");
        return;
    }
    int8_t *out = (int8_t *)(tx + HEADER + 4u);
    int rc;
    uint32_t instructions = icount_call(model_invoke, (const int8_t *)payload, out, &rc);
    if (rc != 0) {
        send_error(seq, ERR_INVOKE, "model_invoke failed");
        return;
    }
    put_u32(tx + HEADER, instructions);
    send(CMD_INFER | CMD_REPLY, seq, 4u + MODEL_OUTPUT_BYTES);
}

static void do_tensor(uint8_t seq, const uint8_t *payload, size_t len) {
    if (len != 1u) {
        send_error(seq, ERR_BAD_LENGTH, "a tensor request is its index:u8");
        return;
    }
    uint8_t k = payload[0];
    if (k >= N_TENSORS) {
        send_error(seq, ERR_OUT_OF_RANGE, "no tensor with that index");
        return;
    }
    const tensor_desc *d = &tensors[k];
    uint8_t *o = tx + HEADER;
    o[0] = k;
    o[1] = (uint8_t)(k >= MODEL_TENSOR_INPUTS);
    o[2] = d->dtype;
    o[3] = d->rank;
    put_u32(o + 4, d->bytes);
    put_u32(o + 8, d->offset);
    put_u32(o + 12, float_bits(model_tensor_scale(k)));
    put_u32(o + 16, (uint32_t)model_tensor_zero_point(k));
    for (uint8_t i = 0; i < d->rank; i++) {
        put_u32(o + 20u + 4u * i, (uint32_t)d->dims[i]);
    }
    send(CMD_TENSOR | CMD_REPLY, seq, 20u + 4u * d->rank);
}

static void do_model_write(uint8_t seq, const uint8_t *payload, size_t len) {
#if TINYMLAAS_MODEL_UPDATE
    size_t region = (size_t)(&_emodel - &_smodel);
    if (len < 4u) {
        send_error(seq, ERR_BAD_LENGTH, "model write needs offset:u32 and data");
        return;
    }
    uint32_t offset = get_u32(payload);
    size_t n = len - 4u;
    if (offset > region || n > region - offset) {
        send_error(seq, ERR_OUT_OF_RANGE, "write beyond the model region");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        (&_smodel)[offset + i] = payload[4u + i];
    }
    put_u32(tx + HEADER, offset);
    put_u32(tx + HEADER + 4u, (uint32_t)n);
    send(CMD_MODEL_WRITE | CMD_REPLY, seq, 8u);
#else
    (void)payload;
    (void)len;
    (void)get_u32;
    send_error(seq, ERR_UNSUPPORTED, "built without TINYMLAAS_MODEL_UPDATE");
#endif
}

static void serve_frame(size_t wire_len) {
    int n = cobs_decode(rx, wire_len);
    if (n < (int)(HEADER + TRAILER)) {
        send_error(n >= 2 ? rx[1] : 0u, ERR_BAD_FRAME, "malformed frame");
        return;
    }
    uint8_t cmd = rx[0], seq = rx[1];
    size_t len = (size_t)rx[2] | ((size_t)rx[3] << 8);
    if (len != (size_t)n - HEADER - TRAILER) {
        send_error(seq, ERR_BAD_LENGTH, "length field disagrees with the frame");
        return;
    }
    uint16_t crc = (uint16_t)(rx[HEADER + len] | (rx[HEADER + len + 1u] << 8));
    if (crc != crc16_ccitt(0xFFFFu, rx, HEADER + len)) {
        send_error(seq, ERR_BAD_CRC, "CRC mismatch");
        return;
    }
    const uint8_t *payload = rx + HEADER;
    switch (cmd) {
    case CMD_INFO:
        do_info(seq);
        break;
    case CMD_INFER:
        do_infer(seq, payload, len);
        break;
    case CMD_TENSOR:
        do_tensor(seq, payload, len);
        break;
    case CMD_MODEL_WRITE:
        do_model_write(seq, payload, len);
        break;
    default:
        send_error(seq, ERR_UNKNOWN_CMD, "unknown command");
    }
}

static void banner(void) {
    text t = {tx, 0, sizeof tx};
    t_str(&t, "TINYMLAAS READY board=");
    t_str(&t, BOARD_NAME);
    t_str(&t, " fw=");
    t_str(&t, FW_VERSION);
    t_str(&t, " model=");
    t_model_sha(&t);
    t_str(&t, " proto=");
    t_udec(&t, PROTO_VERSION);
    t_str(&t, "\n");
    for (size_t i = 0; i < t.len; i++) {
        uart_putc(tx[i]);
    }
}

int main(void) {
    uart_init();
    for (unsigned irq = UART_IRQ; irq < UART_IRQ + UART_IRQ_COUNT; irq++) {
        nvic_enable(irq);
    }
    icount_init();
    banner();
    for (;;) {
        size_t n = 0;
        int too_long = 0;
        for (uint8_t c; (c = rx_pop()) != 0;) {
            if (n < sizeof rx) {
                rx[n++] = c;
            } else {
                too_long = 1;
            }
        }
        if (too_long) {
            send_error(0, ERR_TOO_LONG, "frame longer than the receive buffer");
        } else if (n > 0) { /* an empty frame is a resync: ignore it */
            serve_frame(n);
        }
    }
}
