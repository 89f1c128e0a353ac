@cfo @slow @docker @lwm2m @qemu
Feature: The CFO compares cloud and TinyML inference for cost, and pipelines the two
  As a CFO, I want to compare cloud vs TinyML for cost, from what our devices really do, and I
  want to pipeline cloud and TinyML for flexibility: a device answers what it is sure of and asks
  the cloud about the rest. The service trains a digits classifier (a float and an int8 version)
  and counts the instructions one inference takes on an emulated Cortex-M3; the devices are an x86
  container and an emulated Cortex-M3 behind its bridge, managed over LwM2M with OSCORE.

  Background:
    Given the service has trained a digits classifier and counted its instructions per inference on an emulated "lm3s6965evb"

  Scenario: cloud or TinyML for 10,000 devices at one inference a minute
    When the CFO compares cloud and TinyML for 10,000 devices at one inference per minute on "lm3s6965evb"
    Then the CFO sees which option is cheaper, what each costs per device per year and per million inferences, and the fleet size where they break even
    And every figure says where it came from: the instruction count from the emulator, prices and energy from their documents, the fleet and the rate from the CFO
    And at the break-even fleet size the two options cost the same
    And the comparison comes as a chart of cost against fleet size, in PNG and SVG

  @x86
  Scenario Outline: a device escalates only the inferences it is unsure of to the cloud model
    Given the float model serves as a cloud endpoint
    And the int8 model runs on <device> "<endpoint>", managed by the service
    When an operator sets a hybrid threshold of 0.9 on "<endpoint>"
    And "<endpoint>" runs the digits test split
    Then "<endpoint>" escalated exactly the inferences its int8 model is less than 90 % sure of
    And the device and the service count the same local and escalated inferences and report the escalation rate
    And the accuracy of TinyML alone, of the cloud model alone and of the hybrid is measured on the test split, the device's answers being the hybrid's
    And with that escalation rate, for 10,000 devices at one inference per minute, the hybrid costs more than TinyML and less than the cloud

    Examples:
      | device                                  | endpoint |
      | an x86 container                        | cfo-x86  |
      | an emulated lm3s6965evb behind a bridge | cfo-mcu  |
