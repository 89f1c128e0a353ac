/* The framed UART protocol (mirrored by tinymlaas/edge/uart.py).
 *
 *   wire  := COBS(frame) 0x00          (a 0x00 always ends a frame: resync is free)
 *   frame := cmd:u8 seq:u8 len:u16le payload[len] crc:u16le
 *   crc   := CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over cmd..payload
 *
 * A reply carries cmd | 0x80 and the request's seq. Any bad frame is answered
 * with an ERROR frame (payload: code:u8 then a short text), never ignored. */
#ifndef TINYMLAAS_PROTO_H
#define TINYMLAAS_PROTO_H
#include <stddef.h>
#include <stdint.h>

/* 2: TENSOR, and INFO's inputs= and outputs= (a model with several tensors). */
#define PROTO_VERSION 2

enum proto_cmd {
    CMD_INFO = 0x01,        /* -> key=value lines */
    CMD_INFER = 0x02,       /* inputs, packed -> instructions:u32le outputs, packed */
    CMD_TENSOR = 0x03,      /* k:u8 (every input, then every output) -> k:u8 is_output:u8
                             * dtype:u8 (TFLite TensorType) rank:u8 bytes:u32le offset:u32le
                             * scale:f32le zero_point:i32le dims:i32le[rank] */
    CMD_MODEL_WRITE = 0x10, /* offset:u32le data -> offset:u32le length:u32le */
    /* 0x11..0x1F: reserved for the model-update protocol (begin, commit, ...) */
    CMD_REPLY = 0x80,
    CMD_ERROR = 0x7F,
};

enum proto_error {
    ERR_BAD_FRAME = 1,   /* COBS or header malformed */
    ERR_BAD_CRC = 2,
    ERR_BAD_LENGTH = 3,  /* len field disagrees with the frame, or payload size wrong */
    ERR_TOO_LONG = 4,    /* frame longer than the receive buffer */
    ERR_UNKNOWN_CMD = 5,
    ERR_INVOKE = 6,      /* model_invoke returned non-zero */
    ERR_UNSUPPORTED = 7, /* command not built into this firmware */
    ERR_OUT_OF_RANGE = 8,
};

uint16_t crc16_ccitt(uint16_t crc, const uint8_t *p, size_t n);
/* Decodes in place; returns the decoded length or -1. */
int cobs_decode(uint8_t *buf, size_t n);
/* Sends frame[0..n) COBS-encoded, then the 0x00 delimiter. */
void cobs_send(const uint8_t *frame, size_t n);

#endif
