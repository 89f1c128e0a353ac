@docker
Feature: Boards that Renode runs, QEMU-modelled or not
  As a CTO, I want the design documents' boards that only Renode models (nRF52840, STM32F7,
  SAMD51) built and fit-checked by their builder container in every CI run, and every board
  whose board.toml names Renode run under Renode where it is installed: the same bytes as
  TFLM, and the same instruction counts as QEMU where both run the board.

  Scenario Outline: hello_world for <board> is built in the builder container within its memory
    Given the board "<board>"
    When hello_world is compiled with aot and built in the builder container
    Then the firmware's flash and RAM are within the board's

    Examples:
      | board                     |
      | arduino-nano-33-ble-sense |
      | itsybitsy-m4              |
      | stm32f746g-disco          |

  @renode
  Scenario Outline: hello_world on <board> under Renode is bit-exact with TFLM
    Given Renode is installed
    And the board "<board>"
    When hello_world is compiled with aot, built in the builder container and booted in Renode
    Then the board prints its ready banner with the firmware version and the model hash
    And the outputs for x = 0..6 equal the TFLM interpreter's bytes
    And every inference reports the same instruction count when repeated

    Examples:
      | board                     |
      | arduino-nano-33-ble-sense |
      | itsybitsy-m4              |
      | netduinoplus2             |
      | stm32f746g-disco          |
      | stm32vldiscovery          |

  @renode @qemu
  Scenario Outline: <board> counts the same instructions under Renode as under QEMU
    Given Renode is installed
    And the board "<board>"
    When hello_world is compiled with aot, built in the builder container and booted in Renode
    Then the outputs for x = 0..6 equal the TFLM interpreter's bytes
    And the instruction counts equal QEMU's for the same firmware

    Examples:
      | board            |
      | netduinoplus2    |
      | stm32vldiscovery |
