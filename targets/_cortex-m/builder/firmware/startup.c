/* Vector table, reset and fault handlers for any Cortex-M board.
 *
 * Only the vectors up to the UART's IRQ exist; every unexpected exception is
 * reported like a fault (its number is printed).
 * A fault prints one line on the UART and resets; the emulator runs with
 * -no-reboot, so a crash ends the run instead of hanging it. */
#include <stdint.h>

#include "cortex_m.h"
#include "uart.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern uint32_t _smodel_load, _smodel, _emodel;
extern int main(void);
void SysTick_Handler(void);
void Reset_Handler(void);
void Fault_Handler(void);

static void copy(uint32_t *dst, const uint32_t *src, const uint32_t *end) {
    while (dst < end) {
        *dst++ = *src++;
    }
}

void Reset_Handler(void) {
#ifdef __ARM_FP
    /* Built for the FPU (hard-float): grant full access to CP10/CP11 before any
     * floating-point instruction runs. */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n isb" ::: "memory");
#endif
    copy(&_sdata, &_sidata, &_edata);
    if (&_smodel != &_smodel_load) { /* model data placed in RAM for live updates */
        copy(&_smodel, &_smodel_load, &_emodel);
    }
    for (uint32_t *p = &_sbss; p < &_ebss; p++) {
        *p = 0;
    }
    main();
    system_reset();
}

static void put(const char *s) {
    while (*s) {
        uart_putc((uint8_t)*s++);
    }
}

static void put_hex(uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    put("0x");
    for (int i = 28; i >= 0; i -= 4) {
        uart_putc((uint8_t)digits[(v >> i) & 0xFu]);
    }
}

/* Called with the stacked exception frame: r0-r3, r12, lr, pc, xpsr. */
__attribute__((used)) static void fault_report(const uint32_t *frame) {
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    put("\nHARDFAULT exception=");
    put_hex(ipsr & 0x1FFu);
    put(" pc=");
    put_hex(frame[6]);
    put(" lr=");
    put_hex(frame[5]);
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
    put(" cfsr=");
    put_hex(SCB_CFSR);
    put(" hfsr=");
    put_hex(SCB_HFSR);
#endif
    put("\n");
    system_reset();
}

__attribute__((naked)) void Fault_Handler(void) {
    __asm__ volatile(
        ".syntax unified\n"
        "movs r0, #4\n"
        "mov r1, lr\n"
        "tst r0, r1\n"
        "bne 1f\n"
        "mrs r0, msp\n"
        "b 2f\n"
        "1: mrs r0, psp\n"
        "2: ldr r1, =fault_report\n"
        "bx r1\n");
}

__attribute__((section(".isr_vector"), used)) void (*const vectors[16 + UART_IRQ + UART_IRQ_COUNT])(
    void) = {
    [0] = (void (*)(void))(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2 ... 16 + UART_IRQ] = Fault_Handler, /* anything unexpected is reported as a crash */
    [15] = SysTick_Handler,
    [16 + UART_IRQ ... 16 + UART_IRQ + UART_IRQ_COUNT - 1] = uart_isr,
};
