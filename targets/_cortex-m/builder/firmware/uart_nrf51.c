/* Nordic nRF51 UART (task/event style). The RXDRDY event is cleared before RXD
 * is read: reading RXD re-raises it while more bytes wait. */
#include "cortex_m.h"
#include "uart.h"

#define TASKS_STARTRX REG32(UART_BASE + 0x000u)
#define TASKS_STARTTX REG32(UART_BASE + 0x008u)
#define EVENTS_RXDRDY REG32(UART_BASE + 0x108u)
#define EVENTS_TXDRDY REG32(UART_BASE + 0x11Cu)
#define INTENSET REG32(UART_BASE + 0x304u)
#define ENABLE REG32(UART_BASE + 0x500u)
#define PSELTXD REG32(UART_BASE + 0x50Cu)
#define PSELRXD REG32(UART_BASE + 0x514u)
#define RXD REG32(UART_BASE + 0x518u)
#define TXD REG32(UART_BASE + 0x51Cu)
#define BAUDRATE REG32(UART_BASE + 0x524u)

void uart_init(void) {
    PSELTXD = UART_TX_PIN;
    PSELRXD = UART_RX_PIN;
    BAUDRATE = UART_DIVISOR;
    ENABLE = 4u;
    EVENTS_RXDRDY = 0;
    EVENTS_TXDRDY = 0;
    INTENSET = 1u << 2; /* RXDRDY */
    TASKS_STARTTX = 1u;
    TASKS_STARTRX = 1u;
}

void uart_putc(uint8_t c) {
    TXD = c;
    while (!EVENTS_TXDRDY) {
    }
    EVENTS_TXDRDY = 0;
}

void uart_isr(void) {
    while (EVENTS_RXDRDY) {
        EVENTS_RXDRDY = 0;
        rx_push((uint8_t)RXD);
    }
}
