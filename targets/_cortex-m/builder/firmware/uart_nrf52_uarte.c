/* Nordic nRF52 UARTE: the UART with EasyDMA (nRF52840 Product Specification, section
 * UARTE). Bytes move through RAM buffers, never through a data register: each byte sent
 * is one 1-byte TXD transfer, and reception is a 1-byte RXD buffer re-armed (STARTRX) by
 * the ENDRX interrupt after its byte is taken. Re-arming in the handler rather than with
 * the ENDRX_STARTRX short works the same on the chip, whose RX FIFO holds the bytes that
 * arrive meanwhile, and in Renode's model, which has no SHORTS. */
#include "cortex_m.h"
#include "uart.h"

#define TASKS_STARTRX REG32(UART_BASE + 0x000u)
#define TASKS_STARTTX REG32(UART_BASE + 0x008u)
#define EVENTS_ENDRX REG32(UART_BASE + 0x110u)
#define EVENTS_ENDTX REG32(UART_BASE + 0x120u)
#define INTENSET REG32(UART_BASE + 0x304u)
#define ENABLE REG32(UART_BASE + 0x500u)
#define PSEL_TXD REG32(UART_BASE + 0x50Cu)
#define PSEL_RXD REG32(UART_BASE + 0x514u)
#define BAUDRATE REG32(UART_BASE + 0x524u)
#define RXD_PTR REG32(UART_BASE + 0x534u)
#define RXD_MAXCNT REG32(UART_BASE + 0x538u)
#define TXD_PTR REG32(UART_BASE + 0x544u)
#define TXD_MAXCNT REG32(UART_BASE + 0x548u)

#define ENABLE_UARTE 8u
#define INT_ENDRX (1u << 4)

/* EasyDMA reads and writes RAM only, so both buffers live there. */
static volatile uint8_t rx_byte;
static volatile uint8_t tx_byte;

void uart_init(void) {
    PSEL_TXD = UART_TX_PIN; /* port * 32 + pin, CONNECT (bit 31) = 0 */
    PSEL_RXD = UART_RX_PIN;
    BAUDRATE = UART_DIVISOR;
    ENABLE = ENABLE_UARTE;
    RXD_PTR = (uint32_t)(uintptr_t)&rx_byte;
    RXD_MAXCNT = 1u;
    TXD_PTR = (uint32_t)(uintptr_t)&tx_byte;
    TXD_MAXCNT = 1u;
    EVENTS_ENDRX = 0;
    EVENTS_ENDTX = 0;
    INTENSET = INT_ENDRX;
    TASKS_STARTRX = 1u;
}

void uart_putc(uint8_t c) {
    tx_byte = c;
    EVENTS_ENDTX = 0;
    TASKS_STARTTX = 1u;
    while (!EVENTS_ENDTX) {
    }
    EVENTS_ENDTX = 0;
}

void uart_isr(void) {
    while (EVENTS_ENDRX) {
        EVENTS_ENDRX = 0;
        uint8_t c = rx_byte; /* take the byte before the next transfer may overwrite it */
        TASKS_STARTRX = 1u;
        rx_push(c);
    }
}
