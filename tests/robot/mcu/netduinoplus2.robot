*** Settings ***
Documentation     hello_world on netduinoplus2 under emulation.
Resource          hello_world.resource
Suite Setup       Build Hello World For netduinoplus2
Test Teardown     Reset Emulation


*** Test Cases ***
Boots And Prints The Ready Banner
    Banner Names netduinoplus2

Seven Inferences Equal TFLM
    Seven Inferences On netduinoplus2 Equal TFLM
