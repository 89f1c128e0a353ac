#include "proto.h"

#include "uart.h"

uint16_t crc16_ccitt(uint16_t crc, const uint8_t *p, size_t n) {
    while (n--) {
        crc ^= (uint16_t)((uint16_t)*p++ << 8);
        for (int i = 0; i < 8; i++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

int cobs_decode(uint8_t *buf, size_t n) {
    size_t r = 0, w = 0;
    while (r < n) {
        uint8_t code = buf[r++];
        if (code == 0) {
            return -1;
        }
        for (uint8_t i = 1; i < code; i++) {
            if (r >= n) {
                return -1;
            }
            buf[w++] = buf[r++];
        }
        if (code != 0xFFu && r < n) {
            buf[w++] = 0;
        }
    }
    return (int)w;
}

void cobs_send(const uint8_t *frame, size_t n) {
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && frame[j] != 0 && j - i < 254u) {
            j++;
        }
        size_t run = j - i;
        uart_putc((uint8_t)(run + 1u));
        for (size_t k = i; k < j; k++) {
            uart_putc(frame[k]);
        }
        if (j >= n) {
            break;
        }
        i = run < 254u ? j + 1u : j; /* a short block ended at a zero: consume it */
    }
    uart_putc(0);
}
