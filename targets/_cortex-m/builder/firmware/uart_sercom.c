/* Microchip SAM D5x/E5x SERCOM in USART mode with the internal clock (SAM D5x/E5x
 * Family Data Sheet, DS60001507, section 34 "SERCOM USART and SERCOM UART").
 *
 * The SERCOM's bus clock (MCLK APBxMASK) and core clock (GCLK PCHCTRL, generator 0:
 * 48 MHz DFLL after reset) are enabled and its two pads routed to the pins (PORT PMUX
 * function D) before the USART is configured: 8N1, TX on PAD0, RX on PAD1, 16x
 * arithmetic baud. The status and data registers are accessed byte-wide, as the
 * datasheet allows (and as Renode's SAMD5_UART model implements them).
 * A SERCOM has four interrupt lines; RXC is on the third (SERCOMn_2); the startup
 * code sends all of them (UART_IRQ_COUNT) to uart_isr. */
#include "cortex_m.h"
#include "uart.h"

#define REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))
#define REG16(addr) (*(volatile uint16_t *)(uintptr_t)(addr))

#define CTRLA REG32(UART_BASE + 0x00u)
#define CTRLB REG32(UART_BASE + 0x04u)
#define BAUD REG16(UART_BASE + 0x0Cu)
#define INTENSET REG8(UART_BASE + 0x16u)
#define INTFLAG REG8(UART_BASE + 0x18u)
#define SYNCBUSY REG8(UART_BASE + 0x1Cu)
#define DATA REG8(UART_BASE + 0x28u)

#define CTRLA_ENABLE (1u << 1)
#define CTRLA_MODE_USART_INT_CLK (1u << 2)
#define CTRLA_RXPO_PAD1 (1u << 20)
#define CTRLA_DORD_LSB_FIRST (1u << 30)
#define CTRLB_TXEN (1u << 16)
#define CTRLB_RXEN (1u << 17)
#define SYNCBUSY_ENABLE_CTRLB 0x06u
#define INTFLAG_DRE (1u << 0)
#define INTFLAG_RXC (1u << 2)

#define GCLK_PCHCTRL(id) REG32(0x40001C80u + 4u * (id))
#define GCLK_PCHCTRL_CHEN (1u << 6) /* generator 0 */
#define PORT_PMUX(pin) REG8(0x41008030u + (pin) / 2u)
#define PORT_PINCFG(pin) REG8(0x41008040u + (pin))
#define PMUX_FUNCTION_D 3u

static void route_pin(unsigned pin) {
    unsigned shift = (pin & 1u) ? 4u : 0u;
    PORT_PMUX(pin) = (uint8_t)((PORT_PMUX(pin) & ~(0xFu << shift)) | (PMUX_FUNCTION_D << shift));
    PORT_PINCFG(pin) |= 1u; /* PMUXEN */
}

void uart_init(void) {
    REG32(UART_CLOCK_REG) |= UART_CLOCK_BIT; /* MCLK APBxMASK: the SERCOM's bus clock */
    GCLK_PCHCTRL(UART_GCLK_ID) = GCLK_PCHCTRL_CHEN;
    route_pin(UART_TX_PIN);
    route_pin(UART_RX_PIN);
    CTRLA = CTRLA_DORD_LSB_FIRST | CTRLA_RXPO_PAD1 | CTRLA_MODE_USART_INT_CLK;
    CTRLB = CTRLB_TXEN | CTRLB_RXEN;
    while (SYNCBUSY & SYNCBUSY_ENABLE_CTRLB) {
    }
    BAUD = (uint16_t)UART_DIVISOR;
    INTENSET = INTFLAG_RXC;
    CTRLA = CTRLA_DORD_LSB_FIRST | CTRLA_RXPO_PAD1 | CTRLA_MODE_USART_INT_CLK | CTRLA_ENABLE;
    while (SYNCBUSY & SYNCBUSY_ENABLE_CTRLB) {
    }
}

void uart_putc(uint8_t c) {
    while (!(INTFLAG & INTFLAG_DRE)) {
    }
    DATA = c;
}

void uart_isr(void) {
    while (INTFLAG & INTFLAG_RXC) {
        rx_push(DATA);
    }
}
