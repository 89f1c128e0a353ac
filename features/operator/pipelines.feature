@operator @lwm2m @docker @slow
Feature: The IT operator describes a whole ML pipeline in one file
  As an on-site IT operator, I want to write one file that says which data to train on, how to
  train and quantize, which boards to build for and which group to deploy to, and have the
  service check it before anything runs, telling me every mistake with its line, so that a
  pipeline that starts ends on my devices. Real training (TensorFlow), a build in the x86
  builder container, the x86 device in its container over LwM2M with OSCORE.

  Background:
    Given the operator's service is running with device credentials
    And it has built hello_world "1.0.0" for "x86-tflm"

  Scenario: a pipeline file with two mistakes is refused naming both, a correct one runs to a deployed device
    Given the iris measurements as dataset "iris"
    And "cam-7" is registered tagged "line-p" and runs firmware "1.0.0" in a container
    And a group "line-p" of the devices tagged "line-p"
    When I check a pipeline file that names board "esp32" and group "line-q"
    Then the service refuses it, naming board "esp32" and group "line-q", each with its line
    And no pipeline run was started
    When I run the pipeline file with board "x86-tflm" and group "line-p"
    Then every stage succeeded, each with its job and what it made
    And "cam-7" runs the model the pipeline trained, and the registry says so

  Scenario: a pipeline I stop while it trains goes on from that stage when I run it again
    Given the iris measurements as dataset "iris"
    And "cam-8" is registered tagged "line-r" and runs firmware "1.0.0" in a container
    And a group "line-r" of the devices tagged "line-r"
    When I start the pipeline file with board "x86-tflm" and group "line-r" and cancel it while it trains
    Then the run ends cancelled in its train stage, the dataset stage keeps what it made and nothing after it ran
    When I run it again
    Then the dataset stage was not run again and every other stage succeeded
    And "cam-8" runs the model the pipeline trained, and the registry says so
