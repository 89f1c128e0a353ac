@qemu @docker
Feature: Models run on emulated Cortex-M boards with their real memory maps
  As a CTO, I want every CI run to take a model through compile, build, deploy and
  infer on microcontroller firmware without any board: the aot compiler turns the
  model into C, the board's builder container links it for the board's real flash
  and RAM, and QEMU boots it; the firmware answers over the board's own UART.
  The outlines list the boards whose board.toml names qemu (steps/test_qemu.py checks it);
  the boards only Renode runs are in renode_boards.feature.

  Scenario Outline: hello_world on <board> is bit-exact with TFLM
    Given the board "<board>"
    When hello_world is compiled with aot, built in the builder container and booted in QEMU
    Then the board prints its ready banner with the firmware version and the model hash
    And the outputs for x = 0..6 equal the TFLM interpreter's bytes
    And every inference reports the same instruction count when repeated

    Examples:
      | board            |
      | lm3s6965evb      |
      | stm32vldiscovery |
      | netduinoplus2    |
      | mps2-an385       |
      | mps2-an386       |
      | microbit         |

  Scenario Outline: the digits CNN on <board>, where it fits
    Given the board "<board>"
    When digits_cnn is compiled with aot, built in the builder container and booted in QEMU
    Then the outputs for 3 digit images equal the TFLM interpreter's bytes
    And the firmware's flash and RAM are within the board's

    Examples:
      | board         |
      | lm3s6965evb   |
      | netduinoplus2 |
      | mps2-an385    |
      | mps2-an386    |
      | microbit      |

  Scenario: the digits CNN is refused by the compiler where it does not fit
    Given the board "stm32vldiscovery"
    When digits_cnn is compiled with aot for it
    Then it is refused because it does not fit RAM, naming the bytes missing

  Scenario: a module that does not fit is refused by the builder container before linking
    Given the board "stm32vldiscovery"
    When the digits_cnn module compiled for "microbit" is built for it in the builder container
    Then it is refused because it does not fit RAM, naming the bytes missing
    And the refusal comes from the builder's fit check, not from the linker
